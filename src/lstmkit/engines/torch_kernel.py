"""The torch engine: torch's own fused kernels (oneDNN on CPU, cuDNN on GPU), so a plain LSTM, GRU or RNN costs
exactly what torch.nn's costs.

Traces: the fused kernels return only each layer's output, so a traced call runs the layers one at a time and
then recovers every gate from the outputs with batched GEMMs over all steps (``cell.replay``): every
``h_{t-1}`` is known from the output, so ``a = x W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh`` needs no step loop.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ..cells import Cell, Weights
from ..sequences import Sequences, reverse_within, valid_steps
from .config import RunConfig
from .fused import cpu

NAME = "torch"
KERNELS: dict[str, Callable[..., Any]] = {"lstm": torch.lstm, "gru": torch.gru, "rnn_tanh": torch.rnn_tanh,
                                          "rnn_relu": torch.rnn_relu}
CELL_KERNELS: dict[str, Callable[..., Any]] = {"lstm": torch.lstm_cell, "gru": torch.gru_cell,
                                               "rnn_tanh": torch.rnn_tanh_cell, "rnn_relu": torch.rnn_relu_cell}


def why_not(cell: Cell, config: RunConfig, x: Tensor | None = None, *, trace: bool = False) -> str | None:
    """None when torch's kernel computes exactly this cell and call, else the reason it cannot."""
    if cell.torch_kernel is None:
        return f"torch has no fused kernel for this cell ({type(cell).__name__}: {cell.describe() or 'custom'})"
    if config.zoneout > 0 or (config.recurrent_dropout > 0 and config.training):
        return "torch's fused kernels have no recurrent dropout or zoneout"
    if cell.torch_kernel == "lstm" and not config.single_step and _compiling_with_grad():
        return ("torch's LSTM kernel cannot be differentiated inside torch.compile: AOTAutograd fails on the "
                "mkldnn_rnn_layer it lowers to (torch 2.13; torch.nn.LSTM avoids it by a graph break, "
                "torch._dynamo.config.allow_rnn)")
    if config.edits:
        return ("torch's fused kernels run the recurrence as one opaque call, so an intervention cannot reach "
                "inside it")
    if (x is not None and not config.single_step and x.device.type == "cpu" and torch.is_autocast_enabled("cpu")
            and torch.get_autocast_dtype("cpu") == torch.bfloat16):
        error = cpu.torch_kernel_runs_bf16(cell.torch_kernel)
        if error:
            return (f"torch's {cell.torch_kernel} kernel cannot run under bf16 autocast on this CPU (oneDNN has "
                    f"no bf16 primitive for it here, e.g. without AVX-512: {error!r})")
    return None


def _compiling_with_grad() -> bool:
    """Whether torch.compile is tracing a call that autograd will differentiate. torch.export's graphs have no
    autograd, and torch's LSTM kernel exports fine (as aten.lstm, which ONNX knows): that stays on it.
    ``torch.compiler.is_exporting`` exists from torch 2.6; before, an export with gradients enabled takes the fused
    engine too, which exports as well."""
    exporting = getattr(torch.compiler, "is_exporting", lambda: False)
    return torch.compiler.is_compiling() and torch.is_grad_enabled() and not exporting()


def step(cell: Cell, x: Tensor, state: tuple[Tensor, ...], w: Weights) -> tuple[Tensor, ...]:
    """One step of a cell module on torch's fused cell kernel: x (B, I), state (B, S) each -> the new state."""
    kernel = CELL_KERNELS[str(cell.torch_kernel)]
    out = kernel(x, state if len(state) > 1 else state[0], w.weight_ih, w.weight_hh, w.bias_ih, w.bias_hh)
    return tuple(out) if isinstance(out, tuple | list) else (out,)


def run(cell: Cell, seq: Sequences, hx: tuple[Tensor, ...], weights: list[list[Weights]], config: RunConfig,
        *, trace: bool):
    if not trace:
        out, state = _kernel(cell, seq, hx, weights, config, range(config.num_layers))
        return out, state, None

    D = config.directions
    layer_in, finals, records = seq, [], []
    for layer in range(config.num_layers):
        first = layer * D
        layer_hx = tuple(s[first:first + D] for s in hx)
        layer_out, layer_state = _kernel(cell, layer_in, layer_hx, weights, config, [layer], dropout=False)
        finals.append(layer_state)
        records.append(_replay_layer(cell, layer_in, layer_out, layer_hx, weights[layer], D))
        if config.dropout > 0 and config.training and layer < config.num_layers - 1:
            layer_out = _dropout(layer_out, config.dropout)
        layer_in = layer_out
    state = tuple(torch.cat(s) for s in zip(*finals, strict=True))               # (L*D, B, S) each
    return layer_in, state, records


def _kernel(cell, seq: Sequences, hx, weights, config: RunConfig, layers, dropout: bool = True):
    flat = [p for layer in layers for w in weights[layer] for p in _flat(w)]
    has_bias = weights[0][0].bias_ih is not None
    hidden = hx if len(hx) > 1 else hx[0]
    args = (flat, has_bias, len(layers), config.dropout if dropout else 0.0, config.training,
            config.bidirectional)
    kernel = KERNELS[cell.torch_kernel]
    if seq.is_packed:
        result = kernel(seq.packed_data(), seq.batch_sizes, hidden, *args)
        out = Sequences(data=result[0], batch_sizes=seq.batch_sizes)
    else:
        result = kernel(seq.values(), hidden, *args, seq.batch_first)
        out = Sequences(padded=result[0], batch_first=seq.batch_first)
    return out, tuple(result[1:])


def _flat(w: Weights) -> list[Tensor]:
    """torch's order: W_ih, W_hh, b_ih, b_hh, W_hr (what exists)."""
    return [p for p in (w.weight_ih, w.weight_hh, w.bias_ih, w.bias_hh, w.weight_hr) if p is not None]


def _dropout(seq: Sequences, p: float) -> Sequences:
    if seq.is_packed:
        return Sequences(data=F.dropout(seq.packed_data(), p, True), batch_sizes=seq.batch_sizes)
    return Sequences(padded=F.dropout(seq.values(), p, True), batch_first=seq.batch_first)


def _replay_layer(cell: Cell, seq_in: Sequences, seq_out: Sequences, hx, weights: list[Weights], D: int):
    x = seq_in.time_major()                                                     # (T, B, I)
    y_all = seq_out.time_major()                                                # (T, B, D*R)
    lengths = seq_in.lengths()
    alive = valid_steps(lengths, x.shape[0], x.device)                          # (T, B, 1) or None
    R = cell.output_size
    records = []
    for d in range(D):
        w = weights[d]
        y = y_all[..., d * R:(d + 1) * R]                                       # (T, B, R)
        xd = x
        if d == 1:                                  # a reverse direction is a forward one on flipped steps
            xd, y = reverse_within(x, lengths), reverse_within(y, lengths)
        s0 = tuple(s[d] for s in hx)                                            # (B, S) each
        h_prev = torch.cat([s0[0].unsqueeze(0), y[:-1]])                        # (T, B, R)
        xw = F.linear(xd, w.weight_ih, w.bias_ih)                               # (T, B, G*H)
        hw = F.linear(h_prev, w.weight_hh, w.bias_hh)                           # (T, B, G*H)
        rec = cell.replay(xw, hw, y, s0)
        if alive is not None:
            rec = tuple(r * alive for r in rec)
        if d == 1:
            rec = tuple(reverse_within(r, lengths) for r in rec)
        records.append(rec)
    return records
