"""The compiled CPU engine for one GRU or Elman RNN layer in one direction, with hand-written BPTT.

The same engine as :mod:`lstmkit.engines.fused.lstm` (built with it, same GEMM choice and buffer cache), for the two
cells torch.nn also has. For step t, with h = h_{t-1}::

    h_in = h * recurrent_mask                                   (if a mask is given)
    a_x  = x_t W_ih^T + b_ih;   a_h = h_in W_hh^T + b_hh        (missing biases are 0)
    RNN:  a = a_x + a_h;   h' = tanh(a)  or  relu(a)
    GRU:  r = σ(a_x,r + a_h,r);   z = σ(a_x,z + a_h,z);   n = tanh(a_x,n + r ⊙ a_h,n);   h' = (1 - z) ⊙ n + z ⊙ h
    zoneout (training, 0/1 keep-mask z_h): h' = z_h ⊙ h + (1 - z_h) ⊙ h';  (eval, float p): h' = p h + (1 - p) h'
    y_t = h';  records_t = a (RNN) or (r, z, n) (GRU)

Steps t >= lengths[b] leave row b's state unchanged and give y = records = 0. These are torch.nn.GRU's and
torch.nn.RNN's equations (:mod:`lstmkit.cells.gru`, :mod:`lstmkit.cells.rnn`). ``backend="auto"`` takes this
engine on CPU for traces, recurrent dropout and zoneout, which torch's kernel cannot run, and for every GRU call
(torch's CPU GRU is slower; see :func:`lstmkit.engines.compiled.faster_than_torch`); the plain RNN stays on
torch's kernel, which is as fast.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ...errors import InputError, InputTypeError
from . import build, ops
from .checks import backward_follows, check_edits, check_lengths, check_mask, check_x, expect, is_probability
from .ops import KINDS as _KINDS

__all__ = ["gru_layer", "rnn_layer"]


def gru_layer(x: Tensor, h0: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor | None, b_hh: Tensor | None,
              lengths: Tensor | None = None, recurrent_mask: Tensor | None = None,
              zoneout: Tensor | float | None = None, records: bool = True,
              edits: dict[str, tuple[Tensor, Tensor]] | None = None):
    """One GRU layer in one direction over a padded time-major batch; the equations are in the module docstring.

    Args (T steps, B batch, I input, H hidden): x (T, B, I); h0 (B, H); w_ih (3H, I), w_hh (3H, H), b_ih, b_hh
    (3H,) or None (rows r, z, n); lengths None or int64 (B,) in [0, T]; recurrent_mask None or (B, H), already
    scaled by 1/(1-p); zoneout None, a (T, B, H) 0/1 keep-mask (training) or a float p in [0, 1) (eval).
    Floating tensors but the masks must have x's dtype: float32, float64 or bfloat16. records=False: no trace is
    wanted; without a backward to come the call then keeps one step of the gates and returns them empty
    (0, B, 3H) (with a backward, backward needs them all and they come back whole). edits: interventions, None or
    ``{record: (keep, value)}`` over r, z, n, h, each (T, B, H): ``v' = keep * v + value`` where the record is
    computed (h after zoneout's mix); gradients pass times keep; the records returned are the edited values.

    Returns ``(y (T, B, H), h_n (B, H), gates (T, B, 3H))``: y and h_n carry gradients to x, h0 and the weights;
    gates (activated r, z, n) are records without gradient, float32 for bfloat16 (the pointwise math's dtype).
    Double backward and forward-mode AD are not supported.
    """
    return _layer("gru", 3, x, h0, w_ih, w_hh, b_ih, b_hh, lengths, recurrent_mask, zoneout, records, edits)


def rnn_layer(x: Tensor, h0: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor | None, b_hh: Tensor | None,
              nonlinearity: str = "tanh", lengths: Tensor | None = None, recurrent_mask: Tensor | None = None,
              zoneout: Tensor | float | None = None, records: bool = True,
              edits: dict[str, tuple[Tensor, Tensor]] | None = None):
    """One Elman RNN layer in one direction; as :func:`gru_layer` with w_ih (H, I), w_hh (H, H), b (H,) and
    ``nonlinearity`` "tanh" or "relu". Returns ``(y, h_n, a (T, B, H))``, a the pre-activation (a record; its edit
    acts before the activation)."""
    if nonlinearity not in ("tanh", "relu"):
        raise InputError(f"`nonlinearity` must be 'tanh' or 'relu', got {nonlinearity!r}")
    return _layer(nonlinearity, 1, x, h0, w_ih, w_hh, b_ih, b_hh, lengths, recurrent_mask, zoneout, records, edits)


def _layer(kind, gates, x, h0, w_ih, w_hh, b_ih, b_hh, lengths, recurrent_mask, zoneout, records, edits=None):
    T, B, I = check_x(x)
    dt = x.dtype
    if not isinstance(w_hh, Tensor) or w_hh.dim() != 2:
        raise InputError(f"`w_hh` must be ({gates}H, H), got {getattr(w_hh, 'shape', type(w_hh).__name__)}")
    H = w_hh.shape[1]
    expect("w_hh", w_hh, (gates * H, H), dt)
    expect("w_ih", w_ih, (gates * H, I), dt, " (its second dimension must equal x's input size I)")
    expect("h0", h0, (B, H), dt)
    for name, b in (("b_ih", b_ih), ("b_hh", b_hh)):
        if b is not None:
            expect(name, b, (gates * H,), dt)
    if (b_ih is None) != (b_hh is None):
        raise InputError("`b_ih` and `b_hh` must both be given or both be None")
    acc = torch.float32 if dt == torch.bfloat16 else dt
    lengths = check_lengths(lengths, T, B)
    recurrent_mask = check_mask(recurrent_mask, B, H, acc)
    z_h, zoneout_p = None, 0.0
    if isinstance(zoneout, Tensor):
        expect("zoneout", zoneout, (T, B, H), None)
        z_h = zoneout.to(acc).contiguous()
    elif isinstance(zoneout, (int, float)) and is_probability(zoneout):
        zoneout_p = float(zoneout)
    elif zoneout is not None:
        raise InputTypeError(f"`zoneout` must be None, a float or a (T, B, H) mask, got {type(zoneout).__name__}")
    names = ("r", "z", "n", "h") if kind == "gru" else ("a", "h")
    edit_keep, edit_value = check_edits(edits, dict.fromkeys(names, H), T, B, acc)
    if not build.is_available():
        raise RuntimeError(build.unavailable_reason())
    save = backward_follows(x, h0, w_ih, w_hh, b_ih, b_hh)
    b_ih, b_hh = _biases(b_ih, b_hh, w_ih.shape[0], acc)
    x, h0, w_ih, w_hh = (t.contiguous() for t in (x, h0, w_ih, w_hh))
    y, h_n, gates = ops.gru_rnn(x, h0, w_ih, w_hh, b_ih, b_hh, lengths, recurrent_mask, z_h, zoneout_p, _KINDS[kind],
                                save, bool(records), edit_keep, edit_value)[:3]
    return y, h_n, gates


def _biases(b_ih, b_hh, width: int, acc):
    """(b_ih, b_hh), each (G*H,) = (width,) in the pointwise math's dtype; zeros for a module without biases."""
    return [torch.zeros(width, dtype=acc) if b is None else b.to(acc).contiguous() for b in (b_ih, b_hh)]
