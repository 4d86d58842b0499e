"""The fused engine: the LSTM recurrence compiled to C++ with hand-written backpropagation through time
(:func:`lstmkit.engines.fused.lstm_layer`), for everything torch's kernel cannot run: every variant and
combination, ``proj_size``, recurrent dropout and zoneout, and traces, whose records are the gates the forward
keeps anyway for its backward.

Under ``torch.autocast("cpu", dtype=torch.bfloat16)`` the GEMM operands and results are stored in bfloat16 while
the cell state and the pointwise math stay in float32, as torch's own kernel does under autocast. Where bf16
GEMMs are widened to fp32 anyway (:func:`fused.bf16_runs_as_fp32`), a call that no backward follows runs wholly
in float32 and rounds its outputs to bfloat16: bf16 storage only saves memory for backward, and without one the
per-step conversions were pure cost (2x torch.nn at batch 1).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ..cells import Cell, LSTMCellMath, Weights
from ..sequences import Sequences
from . import fused
from .config import Masks, RunConfig
from .layers import run_layers

DTYPES = (torch.float32, torch.float64, torch.bfloat16)


def compute_dtype(x: Tensor) -> torch.dtype:
    if x.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
        return torch.get_autocast_dtype("cpu")
    return x.dtype


def why_not(cell: Cell, x: Tensor | None = None) -> str | None:
    """None when the fused engine can run this cell on this input, else the reason it cannot."""
    if not isinstance(cell, LSTMCellMath):
        return f"the fused engine runs LSTM cells only, not {type(cell).__name__}"
    if x is not None:
        if x.device.type != "cpu":
            return f"the fused engine runs on CPU only, the input is on {x.device}"
        if compute_dtype(x) not in DTYPES:
            return f"the fused engine runs float32, float64 and bfloat16, not {compute_dtype(x)}"
    if not fused.is_available():
        return f"the fused engine could not be built here ({fused.unavailable_reason()})"
    return None


def run(cell: Cell, seq: Sequences, hx: tuple[Tensor, ...], weights: list[list[Weights]], config: RunConfig,
        *, trace: bool):
    return run_layers(_direction, cell, seq, hx, weights, config, trace)


def _direction(cell: LSTMCellMath, x: Tensor, lengths: Tensor | None, state: tuple[Tensor, ...], w: Weights,
               masks: Masks, config: RunConfig, trace: bool):
    dt = out_dt = compute_dtype(x)
    params = (w.weight_ih, w.weight_hh, w.bias_ih, w.bias_hh, w.weight_hr, *(w.extra or {}).values())
    if dt == torch.bfloat16 and fused.bf16_runs_as_fp32() and not fused.backward_follows(x, *state, *params):
        dt = torch.float32
    cast = (lambda t: t if t is None else t.to(dt))                             # noqa: E731
    h0, c0 = state                                                              # (B, R), (B, H)
    ln = None
    if cell.layer_norm:
        ln = tuple(cast(w[name]) for name in ("weight_ln_ih", "weight_ln_hh", "weight_ln_c", "bias_ln_c"))
    if masks.zoneout is not None:
        z_h, z_c = masks.zoneout                                                # drawn in cell.states order
        zoneout = (z_c, z_h)
    elif config.zoneout > 0:
        zoneout = config.zoneout                                                # eval: the expectation
    else:
        zoneout = None
    y, h_n, c_n, gates, c_seq = fused.lstm_layer(
        cast(x), cast(h0), cast(c0), cast(w.weight_ih), cast(w.weight_hh), cast(w.bias_ih), cast(w.bias_hh),
        cast(w.weight_hr), lengths, cast(w["weight_peephole"]) if cell.peephole else None, ln, cell.coupled,
        masks.recurrent, zoneout, records=trace)
    if out_dt != dt:
        y, h_n, c_n = y.to(out_dt), h_n.to(out_dt), c_n.to(out_dt)
    records = None
    if trace:
        i, f, g, o = gates.chunk(4, dim=-1)                                     # (T, B, H) each
        records = (i, f, g, o, c_seq, y)
    return y, (h_n, c_n), records
