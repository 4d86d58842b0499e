"""The fused engine: the LSTM, GRU and Elman RNN recurrences compiled to C++ with hand-written backpropagation
through time (:mod:`.lstm`, :mod:`.gru_rnn`), for everything torch's kernel cannot run (every LSTM variant and
combination, recurrent dropout and zoneout, and traces, whose records are the gates the forward keeps anyway for
its backward) and where it runs slower (``proj_size``, the GRU).

Under ``torch.autocast("cpu", dtype=torch.bfloat16)`` outputs have the dtype torch.nn's have (bf16 for LSTM and
RNN, x's for the GRU: see :func:`output_dtype`) on every CPU. How the call computes is :func:`.cpu.choice`'s bf16
strategy: with ``"bf16"`` the GEMM operands and results are stored in bfloat16 while the cell state and the
pointwise math stay in float32, as torch's own kernel does; with ``"fp32"`` (CPUs without bf16 instructions or
oneDNN bf16 primitives, or where bf16 GEMMs are not faster) the whole call runs in float32 and rounds its outputs
to bfloat16 (per-step conversions would cost more than bf16 storage saves: layer norm at T=1000, B=32, H=128,
forward+backward, 269 ms in bf16 storage, 187 ms in fp32 on the Intel dev box). Gradients reach the parameters in
their own dtype either way.
"""

from __future__ import annotations

import os

import torch
from torch import Tensor

from ...cells import Cell, GRUCellMath, LSTMCellMath, RNNCellMath, Weights
from ...errors import InputError
from ...sequences import Sequences
from ..config import Masks, RunConfig
from ..layers import run_layers
from . import build, cpu
from .checks import DTYPES
from .constant import constant_under_compile
from .gru_rnn import gru_layer, rnn_layer
from .lstm import lstm_layer

NAME = "fused"
CELLS = (LSTMCellMath, GRUCellMath, RNNCellMath)


# The plain LSTM takes this engine where its per-step product is resident (cpu.resident_product) and either each
# thread has at least LSTM_MIN_ROWS batch rows, or a backward follows a call of at least LSTM_MIN_STEPS steps.
# Measured on the AMD EPYC with AVX2 (2026-12-02), fused / torch's kernel, median of 15 interleaved calls,
# inference and forward+backward (BENCHMARKS.md, "Small shapes"): with 16-64 rows per thread 0.73-0.95 and
# 0.53-0.90 (T = 100-1000, H = 32-128, 1 and 2 threads; lab-h128 inference on 2 threads 1.01); with fewer rows the
# weights' packing and the threads' share of rows do not pay: B = 1 1.01-1.35 and 1.08-1.11, B = 4-8 on 2 threads
# 1.02-1.40 (H = 64-128). At T = 1000, B = 16 on 2 threads (8 rows each) training took 0.43 (its backward is
# where torch's kernel grows faster than linearly in T); the AVX-512 EPYC measured the training bound at T = 500
# (0.62-1.05 there, 0.49-0.94 at T = 1000). The rows rule needs LSTM_ROWS_MIN_STEPS steps for the fused call's
# fixed cost to pay: at B = 32, H = 32 on one thread fused / torch was 1.20 / 1.18 (inference / training) at T = 4,
# 1.07 / 1.06 at T = 8, 1.07 / 1.03 at T = 16 and 0.88 / 0.92 at T = 32 (H = 128: 0.98 / 0.93 at T = 16).
# ``LSTMKIT_FUSED_LSTM_ROWS`` and ``LSTMKIT_FUSED_LSTM_STEPS`` replace the bounds.
LSTM_MIN_ROWS = 16
LSTM_ROWS_MIN_STEPS = 32
LSTM_MIN_STEPS = 500


def _bound(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None:
        return default
    if not value.strip().isdigit():
        raise InputError(f"{name} (={value!r}) must be a non-negative integer")
    return int(value)


@constant_under_compile
def _threads() -> int:
    """torch's thread count; a constant of the graph under torch.compile (which cannot trace the call itself)."""
    return torch.get_num_threads()


def faster_than_torch(cell: Cell, batch: int | None = None, steps: int | None = None) -> bool:
    """Whether this engine beats torch's own kernel on CPU for the plain cell, so ``auto`` should prefer it (for
    calls long enough that its fixed cost pays: :func:`lstmkit.engines.policy.fused_pays`).

    True for the GRU: torch's CPU GRU runs its steps as separate ATen ops, and `lstmkit bench` measured it 1.2-4.4x
    slower than this engine at every recognised shape (BENCHMARKS.md, "GRU and RNN"). For the RNN where its
    per-step product is resident (B x H x H up to cpu.resident_product()): torch's RNN also runs separate ops per
    step, and on the AMD EPYC with AVX2 (2026-12-02, T = 100, 1 and 2 threads) this engine took 0.43-0.64x its
    time in inference and 0.30-0.70x in forward+backward from B x H x H = 66K to 3.9M (B = 1-64, H = 64-512;
    BENCHMARKS.md, "Small shapes"). For the plain LSTM, whose
    torch kernel is oneDNN's, where the per-step product runs on resident weights and either every thread has
    :data:`LSTM_MIN_ROWS` batch rows in a call of :data:`LSTM_ROWS_MIN_STEPS` steps or a backward follows a call of
    :data:`LSTM_MIN_STEPS` steps (figures above those constants).
    """
    if type(cell) is LSTMCellMath and batch is not None and steps is not None:
        min_rows = _bound("LSTMKIT_FUSED_LSTM_ROWS", LSTM_MIN_ROWS)     # read first: a bad value always raises
        min_steps = _bound("LSTMKIT_FUSED_LSTM_STEPS", LSTM_MIN_STEPS)
        step_product = batch * cell.output_size * 4 * cell.hidden_size
        if torch.is_autocast_enabled("cpu") or step_product > cpu.resident_product():
            return False
        rows = batch / max(1, _threads())
        return ((rows >= min_rows and steps >= LSTM_ROWS_MIN_STEPS)
                or (torch.is_grad_enabled() and steps >= min_steps))
    if type(cell) is GRUCellMath:
        return True
    if type(cell) is RNNCellMath and batch is not None:
        return batch * cell.hidden_size * cell.hidden_size <= cpu.resident_product()
    return False


def compute_dtype(x: Tensor) -> torch.dtype:
    """The dtype of a call's GEMMs: autocast's (CPU) when it is on, else x's."""
    if x.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
        return torch.get_autocast_dtype("cpu")
    return x.dtype


def output_dtype(x: Tensor, cell: Cell) -> torch.dtype:
    """The dtype torch.nn returns for this cell: the compute dtype, but x's for the GRU. torch has CPU autocast
    rules for lstm and rnn_tanh/rnn_relu but none for gru: torch.nn.GRU under a bf16 autocast runs its inner
    GEMMs in bf16 (they are autocast ops) and returns float32."""
    return x.dtype if type(cell) is GRUCellMath else compute_dtype(x)


def why_not(cell: Cell, config: RunConfig, x: Tensor | None = None, *, trace: bool = False) -> str | None:
    """None when the fused engine can run this cell and call, else the reason it cannot (``x`` None: any input)."""
    if type(cell) not in CELLS:  # exactly these: a subclass may have changed the math
        return f"the fused engine runs lstmkit's LSTM, GRU and RNN cells only, not {type(cell).__name__}"
    if config.single_step:
        return "the fused engine runs whole sequences, not the single steps of a cell module"
    if x is not None:
        if x.device.type != "cpu":
            return f"the fused engine runs on CPU only, the input is on {x.device}"
        if compute_dtype(x) not in DTYPES:
            return f"the fused engine runs float32, float64 and bfloat16, not {compute_dtype(x)}"
    if trace and torch.is_grad_enabled():
        return "its trace records carry no gradient; trace under torch.no_grad() or use 'reference'"
    if not build.is_available():
        return f"the fused engine could not be built here ({build.unavailable_reason()})"
    return None


def run(cell: Cell, seq: Sequences, hx: tuple[Tensor, ...], weights: list[list[Weights]], config: RunConfig,
        *, trace: bool):
    return run_layers(_direction, cell, seq, hx, weights, config, trace)


def _direction(cell: Cell, x: Tensor, lengths: Tensor | None, state: tuple[Tensor, ...], w: Weights,
               masks: Masks, config: RunConfig, trace: bool, edits: dict | None = None):
    dt, out_dt = compute_dtype(x), output_dtype(x, cell)
    layer_norm = isinstance(cell, LSTMCellMath) and cell.variant.layer_norm
    step_product = x.shape[1] * cell.output_size * cell.gates * cell.hidden_size          # B x R x G*H
    if dt == torch.bfloat16 and (layer_norm or cpu.bf16_runs_as_fp32(step_product)):
        # Layer norm normalises the GEMM results over few features, which magnifies their bf16 rounding: with bf16
        # storage the input gradient of a 2-layer H=6 layer-norm LSTM was 23% off float32's (the reference loop
        # under the same autocast: 5%). In float32 it stays within the output's rounding.
        dt = torch.float32
    cast = (lambda t: t if t is None or t.dtype == dt else t.to(dt))            # noqa: E731
    edits = edits or None
    if isinstance(cell, LSTMCellMath):
        y, state, records = _lstm(cell, cast(x), lengths, tuple(map(cast, state)), w, cast, masks, config, trace,
                                  edits)
    else:
        y, state, records = _gru_rnn(cell, cast(x), lengths, cast(state[0]), w, cast, masks, config, trace, edits)
    if out_dt != dt:
        y, state = y.to(out_dt), tuple(s.to(out_dt) for s in state)
    if not trace:
        return y, state, None
    # Records in the output's dtype, one rule for every cell (the engine keeps gates and c in the pointwise math's
    # float32); every cell's last record is h, the output.
    return y, state, (*(r.to(y.dtype) for r in records[:-1]), y)


def _zoneout(masks: Masks, config: RunConfig):
    """The engine's zoneout argument: the keep-masks in cell.states order (training), p (eval) or None."""
    if masks.zoneout is not None:
        return masks.zoneout
    return config.zoneout if config.zoneout > 0 else None


def _gru_rnn(cell: Cell, x, lengths, h0, w: Weights, cast, masks: Masks, config: RunConfig, trace: bool, edits):
    zoneout = _zoneout(masks, config)
    zoneout = zoneout[0] if isinstance(zoneout, tuple) else zoneout             # the one state, h
    args = (x, h0, cast(w.weight_ih), cast(w.weight_hh), cast(w.bias_ih), cast(w.bias_hh))
    opts = dict(lengths=lengths, recurrent_mask=masks.recurrent, zoneout=zoneout, records=trace, edits=edits)
    if isinstance(cell, GRUCellMath):
        y, h_n, gates = gru_layer(*args, **opts)
        if not trace:
            return y, (h_n,), ()
        r, z, n = gates.chunk(3, dim=-1)                                        # (T, B, H) each
        return y, (h_n,), (r, z, n, y)
    assert isinstance(cell, RNNCellMath)                                        # (CELLS: LSTM, GRU, RNN only)
    y, h_n, a = rnn_layer(*args, nonlinearity=cell.nonlinearity, **opts)
    return y, (h_n,), (a, y)


def _lstm(cell: LSTMCellMath, x, lengths, state, w: Weights, cast, masks: Masks, config: RunConfig, trace: bool,
          edits):
    h0, c0 = state                                                              # (B, R), (B, H)
    v = cell.variant                                                            # which terms the cell has
    ln = None
    if v.layer_norm:
        ln = tuple(cast(w[name]) for name in ("weight_ln_ih", "weight_ln_hh", "weight_ln_c", "bias_ln_c"))
    zoneout = _zoneout(masks, config)                                           # (z_h, z_c): cell.states order
    y, h_n, c_n, gates, c_seq = lstm_layer(
        x, h0, c0, cast(w.weight_ih), cast(w.weight_hh), cast(w.bias_ih), cast(w.bias_hh), cast(w.weight_hr),
        lengths, cast(w["weight_peephole"]) if v.peephole else None, ln, v.coupled, masks.recurrent, zoneout,
        records=trace, edits=edits)
    if not trace:
        return y, (h_n, c_n), ()
    i, f, g, o = gates.chunk(4, dim=-1)                                         # (T, B, H) each
    return y, (h_n, c_n), (i, f, g, o, c_seq, y)
