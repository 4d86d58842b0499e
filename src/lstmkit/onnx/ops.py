"""The custom ops an lstmkit layer becomes while it is exported: one per layer (all its directions), whose
translation (``translate.py``) is ONNX's own LSTM, GRU or RNN node.

Their eager implementation is the reference engine on one layer, so the ops compute in torch exactly what the
module computes; ``torch.export`` only needs their shapes (``register_fake``). Weights stay in lstmkit's (torch's)
layout here; the translation reorders gates for ONNX. ``options`` is a JSON string (custom ops take strings, not
dicts): ``cell`` ("lstm", "gru", "rnn_tanh", "rnn_relu"), ``hidden_size``, ``directions``, ``bias``,
``peephole``, ``coupled``.

Shapes: x (T, B, I) time-major, h0/c0 (D, B, H), lengths (B,) int64 or None; weights per direction
``weight_ih, weight_hh[, bias_ih, bias_hh][, weight_peephole]``. Outputs y (T, B, D*H) (zero past each length),
h_n/c_n (D, B, H).
"""

from __future__ import annotations

import json

import torch
from torch import Tensor

from ..cells import Cell, GRUCellMath, LSTMCellMath, RNNCellMath, Weights
from ..engines.config import Masks, RunConfig
from ..engines.reference import run_direction
from ..sequences import reverse_within


def options(cell: str, hidden_size: int, directions: int, bias: bool, peephole: bool = False,
            coupled: bool = False) -> str:
    return json.dumps({"cell": cell, "hidden_size": hidden_size, "directions": directions, "bias": bias,
                       "peephole": peephole, "coupled": coupled}, sort_keys=True)


def weights_per_direction(weights: list[Tensor], o: dict) -> list[Weights]:
    """The flat list the op takes, back into one :class:`Weights` per direction."""
    n = len(weights) // o["directions"]
    out = []
    for d in range(o["directions"]):
        w = weights[d * n:(d + 1) * n]
        b_ih, b_hh = (w[2], w[3]) if o["bias"] else (None, None)
        extra = {"weight_peephole": w[-1]} if o["peephole"] else {}
        out.append(Weights(w[0], w[1], b_ih, b_hh, None, extra))
    return out


def _cell(o: dict) -> Cell:
    H = o["hidden_size"]
    if o["cell"] == "lstm":
        return LSTMCellMath(H, peephole=o["peephole"], coupled=o["coupled"])
    if o["cell"] == "gru":
        return GRUCellMath(H)
    return RNNCellMath(H, nonlinearity=o["cell"].removeprefix("rnn_"))


def _run(x: Tensor, weights: list[Tensor], states: tuple[Tensor, ...], lengths: Tensor | None,
         options_json: str) -> tuple[Tensor, ...]:
    """One layer, every direction, on the reference engine: y (T, B, D*H) and the final states (D, B, H)."""
    o = json.loads(options_json)
    cell = _cell(o)
    config = RunConfig(1, o["directions"] == 2)
    lengths = None if lengths is None else lengths.to("cpu", torch.int64)
    ys, finals = [], []
    for d, w in enumerate(weights_per_direction(weights, o)):
        xd = x if d == 0 else reverse_within(x, lengths)
        y, state, _ = run_direction(cell, xd, lengths, tuple(s[d] for s in states), w, Masks(), config, False)
        ys.append(y if d == 0 else reverse_within(y, lengths))
        finals.append(state)
    stacked = tuple(torch.stack(s) for s in zip(*finals, strict=True))
    return (torch.cat(ys, dim=-1), *stacked)


@torch.library.custom_op("lstmkit::onnx_lstm_layer", mutates_args=())
def lstm_layer(x: Tensor, weights: list[Tensor], h0: Tensor, c0: Tensor, lengths: Tensor | None,
               options: str) -> tuple[Tensor, Tensor, Tensor]:
    y, h, c = _run(x, weights, (h0, c0), lengths, options)
    return y, h, c


@lstm_layer.register_fake
def _(x, weights, h0, c0, lengths, options):
    D, B, H = h0.shape
    return x.new_empty(x.shape[0], B, D * H), h0.new_empty(h0.shape), c0.new_empty(c0.shape)


@torch.library.custom_op("lstmkit::onnx_gru_rnn_layer", mutates_args=())
def gru_rnn_layer(x: Tensor, weights: list[Tensor], h0: Tensor, lengths: Tensor | None,
                  options: str) -> tuple[Tensor, Tensor]:
    y, h = _run(x, weights, (h0,), lengths, options)
    return y, h


@gru_rnn_layer.register_fake
def _(x, weights, h0, lengths, options):
    D, B, H = h0.shape
    return x.new_empty(x.shape[0], B, D * H), h0.new_empty(h0.shape)
