"""Which engine runs a call: one policy for the sequence modules and the cell modules alike.

An explicit ``backend`` runs on that engine or raises saying why it cannot. ``"auto"`` only ever changes speed,
never results (every engine is tested against the reference), and takes, in order:

1. the fused engine for traces without gradients (it keeps the gates anyway, so a trace costs what a forward
   costs, where replaying them after torch's kernel costs up to 2x more), for ``proj_size`` (where torch leaves
   oneDNN for a slower path), for the GRU (torch's CPU GRU is slower: :func:`.fused.faster_than_torch`) and
   for the plain LSTM's long small-model training calls (T >= 500 where the per-step product is resident),
   these two when the call is long enough for that to pay (:func:`fused_pays`: a fused call has a fixed cost);
2. torch's kernel wherever it computes exactly this call (a plain module costs what torch.nn costs);
3. the fused engine (variants, recurrent dropout, zoneout; torch's kernels that cannot run bf16 on this CPU);
4. the reference loop (custom cells, traces with gradients, variants off the CPU), with one warning when the
   fused engine would have served but cannot be built here.
"""

from __future__ import annotations

import os
import warnings

import torch
from torch import Tensor

from ..cells import Cell
from ..errors import InputError
from . import fused, reference, torch_kernel
from .base import Engine
from .config import RunConfig

ENGINES: dict[str, Engine] = {"torch": torch_kernel, "fused": fused, "reference": reference}
BACKENDS = ("auto", *ENGINES)
_warned: set[str] = set()
_DYNAMIC_STEPS = ("torch's kernel fixes the number of steps when traced (its decomposition loops over them), so it "
                  "cannot serve a dynamic length under torch.export or torch.compile")


def check_backend(backend, cell: Cell, config: RunConfig, *, offered: tuple[str, ...] = BACKENDS,
                  what: str = "module") -> str:
    """At construction: `backend` is one of `offered` and, when explicit, can serve this cell at all."""
    if not isinstance(backend, str) or backend not in offered:
        raise InputError(f"`backend` must be one of {', '.join(map(repr, offered))}, got {backend!r}")
    if backend in ("torch", "fused"):
        reason = ENGINES[backend].why_not(cell, config)
        if reason:
            raise InputError(f"backend={backend!r} cannot run this {what}: {reason}; use backend='auto' or "
                             "'reference'")
    return backend


def fused_pays(cell: Cell, steps: int | None, batch: int | None) -> bool:
    """Whether a call of ``steps`` x ``batch`` is long enough for the fused engine to beat torch's kernel where
    it would run only for speed (the GRU, ``proj_size``; a trace takes the fused engine at any length: its
    records come from the forward itself, where torch's kernel would need a replay). A fused call has a fixed
    cost (~90-200 us here: the argument checks, the custom op and its autograd, the C++ set-up) that torch's kernels,
    which cost more per step, do not.

    Measured on the AMD EPYC (2 threads, fused / torch time; BENCHMARKS.md, "Small calls"): GRU inference at
    B=1, H=32 is 3.0x at T=1, 1.15x at T=8, 1.09x at T=16; at B=32, H=64 0.84x from T=8; at B=64, H=256 0.75x
    from T=2. With a backward, GRU at B=1, H=32 is 0.80x from T=4. ``proj_size`` (P = H/2) inference at B=32,
    H=64 was still 1.6x at T=16 (per-step products that small are call overhead) but 0.69x at T=100, and 0.94x at
    T=50, B=1, 0.60x at T=5000, B=1, H=2; 0.7x from T=4 at B=64, H=256; its training 0.54x at T=16 even when
    small. Hence: with gradients, T >= 4; without, T >= 8 and T x B >= 32, and for ``proj_size`` also T >= 32 or
    a per-step product of at least 1M multiply-adds.
    ``LSTMKIT_FUSED_MIN_STEPS`` replaces the step bound (4 and 8) by its value for both.
    """
    if steps is None or batch is None:
        return True
    grad = torch.is_grad_enabled()
    override = os.environ.get("LSTMKIT_FUSED_MIN_STEPS")
    if override is not None:
        if not override.isdigit():
            raise InputError(f"LSTMKIT_FUSED_MIN_STEPS (={override!r}) must be a non-negative integer")
        min_steps = int(override)
    else:
        min_steps = 4 if grad else 8
    if steps < min_steps:
        return False
    if grad:
        return True
    if steps * batch < 32:
        return False
    if cell.proj_size > 0:
        G, H, R = cell.gates, cell.hidden_size, cell.output_size
        return steps >= 32 or batch * R * G * H >= fused.SMALL_PRODUCT
    return True


def choose(backend: str, cell: Cell, config: RunConfig, x: Tensor, trace: bool, *, steps: int | None = None,
           batch: int | None = None) -> Engine:
    """The engine for this call (see the module docstring); an explicit backend that cannot serve it raises.
    ``steps`` and ``batch`` (T and B; None: unknown) let ``auto`` weigh a fused call's fixed cost.

    Under torch.export or torch.compile with a dynamic length (``steps`` a SymInt), torch's kernel cannot serve: its
    decomposition loops over the steps in Python and fixes T (torch.nn.LSTM does not export with a dynamic T), while
    the fused engine is one op per layer for any T; and a symbolic size is unknown to the cost model."""
    dynamic_steps = isinstance(steps, torch.SymInt)
    if dynamic_steps or torch.jit.is_tracing():         # (torch.jit.trace: sizes are traced values, not constants)
        steps = batch = None
    if backend != "auto":
        engine = ENGINES[backend]
        reason = engine.why_not(cell, config, x, trace=trace)
        if reason is None and engine is torch_kernel and dynamic_steps:
            reason = _DYNAMIC_STEPS
        if reason:
            raise InputError(f"backend={backend!r} cannot run this call: {reason}; use backend='auto'")
        return engine
    fused_first = trace or cell.proj_size > 0 or fused.faster_than_torch(cell, batch, steps)
    torch_reason = torch_kernel.why_not(cell, config, x, trace=trace) or (_DYNAMIC_STEPS if dynamic_steps else None)
    if fused_first and not trace and torch_reason is None and not fused_pays(cell, steps, batch):
        return torch_kernel
    if fused_first and fused.why_not(cell, config, x, trace=trace) is None:
        return fused
    if torch_reason is None:
        return torch_kernel
    fused_reason = fused.why_not(cell, config, x, trace=trace)   # (only now: it may build the engine)
    if fused_reason is None:
        return fused
    if (type(cell) in fused.CELLS and not config.single_step and x.device.type == "cpu"
            and not fused.is_available()):
        _warn_once(f"lstmkit: {fused_reason}; this module runs on the (slower) reference engine")
    return reference


def _warn_once(message: str) -> None:
    if message not in _warned:
        _warned.add(message)
        warnings.warn(message, RuntimeWarning, stacklevel=5)
