"""How much memory a run needs, estimated from its config before anything is allocated, and the refusal of a run
that cannot fit in this machine's RAM (rather than a crash in the allocator minutes later, or the OOM killer).

The estimate counts float32 values: the parameters four times (weights, gradients, Adam's two moments) and twice
more while a checkpoint is encoded; a training step's activations kept for backward, about ``(G + 4) H`` per
sequence, step and layer (G gate layers, plus c, h, tanh c and the input); the held-out set and its outputs; and an
evaluation chunk's activations. It is a lower bound, so a refusal is certain to be right; the limit is the
machine's physical RAM.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from .config import TrainConfig
from .model import GATE_LAYERS
from .tasks import Task

FLOAT = 4  # bytes
EVAL_CHUNK = 512  # sequences per evaluation forward (lstmkit.lab.metrics.evaluate)


def estimate_bytes(config: TrainConfig, task: Task) -> int:
    B, T, I, O = config.batch, task.seq_len, task.input_size, task.output_size  # noqa: E741 (the shape names)
    H, L, G = config.model.hidden, config.model.layers, GATE_LAYERS[config.model.model]
    params = sum(G * H * ((I if layer == 0 else H) + H + 2) for layer in range(L)) + H * O + O
    n_test = task.test_size
    values = (6 * params
              + B * T * (L * (G + 4) * H + I + 2 * O)  # training activations
              + n_test * T * (I + O)  # held-out inputs and outputs
              + min(n_test, EVAL_CHUNK) * T * L * (G + 2) * H)  # one evaluation chunk
    return values * FLOAT


def physical_memory() -> int | None:
    """This machine's RAM in bytes (None where the OS does not say)."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def check_fits(config: TrainConfig, task: Task, name: Callable[[str], str] = lambda field: f"`{field}`") -> None:
    """Raise a ValueError naming the sizes (as ``name(field)``) if the run cannot fit in this machine's RAM."""
    limit = physical_memory()
    need = estimate_bytes(config, task)
    if limit is not None and need > limit:
        sizes = ", ".join(f"{name(field)} {value}" for field, value in (
            ("batch", config.batch), ("seq_len", task.config()["seq_len"]), ("hidden", config.model.hidden),
            ("layers", config.model.layers)))
        raise ValueError(f"the run needs at least {_size(need)} of memory ({sizes}), more than this machine's "
                         f"{_size(limit)} of RAM; lower one of them")


def _size(n: float) -> str:
    for unit in ("bytes", "KB", "MB", "GB", "TB", "PB"):
        if n < 1024 or unit == "PB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PB"
