"""Which engine runs a call: one policy for the sequence modules and the cell modules alike.

An explicit ``backend`` runs on that engine or raises saying why it cannot. ``"auto"`` only ever changes speed,
never results (every engine is tested against the reference), and takes, in order:

1. the fused engine for traces without gradients (it keeps the gates anyway, so a trace costs what a forward
   costs, where replaying them after torch's kernel costs up to 2x more), for ``proj_size`` (where torch leaves
   oneDNN for a slower path) and for the GRU (torch's CPU GRU is slower: :func:`.fused.faster_than_torch`);
2. torch's kernel wherever it computes exactly this call (a plain module costs what torch.nn costs);
3. the fused engine (variants, recurrent dropout, zoneout; torch's kernels that cannot run bf16 on this CPU);
4. the reference loop (custom cells, traces with gradients, variants off the CPU), with one warning when the
   fused engine would have served but cannot be built here.
"""

from __future__ import annotations

import warnings

from torch import Tensor

from ..cells import Cell
from ..errors import InputError
from . import fused, reference, torch_kernel
from .base import Engine
from .config import RunConfig

ENGINES: dict[str, Engine] = {"torch": torch_kernel, "fused": fused, "reference": reference}
BACKENDS = ("auto", *ENGINES)
_warned: set[str] = set()


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


def choose(backend: str, cell: Cell, config: RunConfig, x: Tensor, trace: bool) -> Engine:
    """The engine for this call (see the module docstring); an explicit backend that cannot serve it raises."""
    if backend != "auto":
        engine = ENGINES[backend]
        reason = engine.why_not(cell, config, x, trace=trace)
        if reason:
            raise InputError(f"backend={backend!r} cannot run this call: {reason}; use backend='auto'")
        return engine
    fused_first = trace or cell.proj_size > 0 or fused.faster_than_torch(cell)
    if fused_first and fused.why_not(cell, config, x, trace=trace) is None:
        return fused
    if torch_kernel.why_not(cell, config, x, trace=trace) is None:
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
