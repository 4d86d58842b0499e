# onnxscript's opset stubs type inputs as its symbolic tensor types; in trace mode (a translation table) they take
# the exporter's values and Python lists of ints, as torch's own translations pass them.
# mypy: disable-error-code="arg-type,type-var"
"""The ONNX nodes the custom ops of ``ops.py`` become: the translation table handed to ``torch.onnx.export``.

Gate orders differ: torch (and lstmkit) stack LSTM rows as i, f, g, o and peepholes as (i, f, o); ONNX wants
W/R/B rows i, o, f, c and P as (i, o, f). GRU: torch r, z, n; ONNX z, r, h. ONNX's B is [Wb, Rb] (8H for the
LSTM), and its Y is (T, D, B, H), which becomes lstmkit's (T, B, D*H). Reordering happens on the weight
initialisers, which the exporter's optimiser folds into constants.
"""

from __future__ import annotations

import json

import numpy as np
import onnx_ir as ir
import torch
from onnxscript import opset18 as op

from .ops import gru_rnn_layer, lstm_layer

LSTM_ORDER = (0, 3, 1, 2)        # torch's i, f, g, o -> ONNX's i, o, f, c
PEEPHOLE_ORDER = (0, 2, 1)       # lstmkit's p_i, p_f, p_o -> ONNX's P[i, o, f]
GRU_ORDER = (1, 0, 2)            # torch's r, z, n -> ONNX's z, r, h


def _reorder(t, order: tuple[int, ...], H: int):
    """``t``'s H-row blocks (along axis 0) in ``order``: one Gather with constant indices, which the exporter's
    optimiser folds into the initialiser."""
    if order == tuple(range(len(order))):
        return t
    rows = np.concatenate([np.arange(k * H, (k + 1) * H) for k in order])
    return op.Gather(t, op.Constant(value=ir.tensor(rows)), axis=0)


def _per_direction(weights, o: dict) -> list[list]:
    n = len(weights) // o["directions"]
    return [list(weights[d * n:(d + 1) * n]) for d in range(o["directions"])]


def _operands(weights, o: dict, order: tuple[int, ...]):
    """W (D, G*H, I), R (D, G*H, H), B (D, 2*G*H) or None, P (D, 3H) or None."""
    H = o["hidden_size"]
    Ws, Rs, Bs, Ps = [], [], [], []
    for w in _per_direction(weights, o):
        Ws.append(op.Unsqueeze(_reorder(w[0], order, H), [0]))
        Rs.append(op.Unsqueeze(_reorder(w[1], order, H), [0]))
        if o["bias"]:
            Bs.append(op.Unsqueeze(op.Concat(_reorder(w[2], order, H), _reorder(w[3], order, H), axis=0), [0]))
        if o["peephole"]:                                                       # (3, H) rows -> (1, 3H)
            Ps.append(op.Reshape(_reorder(w[-1], PEEPHOLE_ORDER, 1), [1, -1]))
    cat = lambda vs: (vs[0] if len(vs) == 1 else op.Concat(*vs, axis=0)) if vs else None  # noqa: E731
    return cat(Ws), cat(Rs), cat(Bs), cat(Ps)


def _lengths(lengths):
    return None if lengths is None else op.Cast(lengths, to=6)                 # int32, as sequence_lens is


def _output(Y):
    """ONNX's Y (T, D, B, H) as lstmkit's output (T, B, D*H)."""
    return op.Reshape(op.Transpose(Y, perm=[0, 2, 1, 3]), [0, 0, -1])


def _direction(o: dict) -> str:
    return "bidirectional" if o["directions"] == 2 else "forward"


def onnx_lstm_layer(x, weights, h0, c0, lengths, options: str):
    o = json.loads(options)
    W, R, B, P = _operands(weights, o, LSTM_ORDER)
    Y, Y_h, Y_c = op.LSTM(x, W, R, B, _lengths(lengths), h0, c0, P, direction=_direction(o),
                          hidden_size=o["hidden_size"], input_forget=int(o["coupled"]))
    return _output(Y), Y_h, Y_c


def onnx_gru_rnn_layer(x, weights, h0, lengths, options: str):
    o = json.loads(options)
    if o["cell"] == "gru":
        W, R, B, _ = _operands(weights, o, GRU_ORDER)
        Y, Y_h = op.GRU(x, W, R, B, _lengths(lengths), h0, direction=_direction(o), hidden_size=o["hidden_size"],
                        linear_before_reset=1)
    else:
        W, R, B, _ = _operands(weights, o, (0,))                         # one gate: no reordering
        activation = "Tanh" if o["cell"] == "rnn_tanh" else "Relu"
        Y, Y_h = op.RNN(x, W, R, B, _lengths(lengths), h0, direction=_direction(o), hidden_size=o["hidden_size"],
                        activations=[activation] * o["directions"])
    return _output(Y), Y_h


def translation_table() -> dict:
    """``{op: translation}`` for ``torch.onnx.export(..., custom_translation_table=...)``."""
    return {torch.ops.lstmkit.onnx_lstm_layer.default: onnx_lstm_layer,
            torch.ops.lstmkit.onnx_gru_rnn_layer.default: onnx_gru_rnn_layer}


__all__ = ["translation_table", "lstm_layer", "gru_rnn_layer"]
