"""The compiled CPU engine for one LSTM layer in one direction, with hand-written BPTT.

:func:`lstm_layer` runs the recurrence below over a padded, time-major batch in C++ (``lstmkit/csrc``), compiled
on first use with :func:`torch.utils.cpp_extension.load` and cached. For step t, with h = h_{t-1}, c = c_{t-1}::

    h_in = h * recurrent_mask                                      (if a mask is given)
    a    = x_t W_ih^T + h_in W_hh^T + b_ih + b_hh                  (missing biases are 0)
    a    = LN(x_t W_ih^T; γ_ih) + LN(h_in W_hh^T; γ_hh) + b_ih + b_hh      with ln
           LN(v; γ) = γ ⊙ (v - mean(v)) / sqrt(var(v) + eps) over the 4H features, biased var, eps = 1e-5
    a_i, a_f, a_g, a_o = split(a, 4);   with peephole: a_i += p_i ⊙ c,  a_f += p_f ⊙ c
    i = σ(a_i);   f = 1 - i if coupled else σ(a_f);   g = tanh(a_g)
    c' = f ⊙ c + i ⊙ g;                 with peephole: a_o += p_o ⊙ c'
    o = σ(a_o)
    m = γ_c ⊙ (c' - mean(c')) / sqrt(var(c') + eps) + β_c  with ln (over H),  else m = c'
    h' = o ⊙ tanh(m);                   with w_hr: h' = h' W_hr^T
    zoneout (training, 0/1 masks z_h, z_c; 1 keeps the old value): c' = z_c ⊙ c + (1 - z_c) ⊙ c',  same for h'
    zoneout (eval, float p):                                      c' = p c + (1 - p) c',             same for h'
    y_t = h';  state = (h', c');  gates_t = (i, f, g, o);  c_seq_t = c'

Steps t >= lengths[b] leave row b's state unchanged and give y = gates = c_seq = 0.

The algorithm is the one oneDNN and haste use: one GEMM X W_ih^T over all T*B rows; per step one GEMM
h_in W_hh^T and one fused pointwise pass (rows in parallel); backward per step one pointwise pass and one GEMM
dA W_hh, and dW_ih, dW_hh, dX (and dW_hr) as GEMMs over many rows at once. Results are bitwise reproducible.

Backward runs in chunks of about 1024 rows (K steps of B rows), from the last: per chunk it runs the chunk's
steps, then adds the chunk's share of dW_ih, dW_hh, dX and the parameter grads, so the grads of a (and with ln
of a_x, a_h and m) exist for one chunk at a time instead of (T, B, 4H) each. With ln, forward saves only the mean
and rstd of a_x = x W_ih^T, a_h = h_in W_hh^T and c', not their normalised values: backward recomputes the
chunk's a_x and a_h (one GEMM each) and rebuilds them: two GEMMs more (forward+backward ~20% slower at T=100,
B=64, H=512) for 40% of the peak memory (csrc/lstm_layer.cpp).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ...errors import InputError, InputTypeError
from . import build, ops
from .checks import backward_follows, check_edits, check_lengths, check_mask, check_x, expect, is_probability
from .ops import EPS  # noqa: F401  (layer norm's epsilon, documented above)

__all__ = ["lstm_layer"]


def lstm_layer(x: Tensor, h0: Tensor, c0: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor | None,
               b_hh: Tensor | None, w_hr: Tensor | None = None, lengths: Tensor | None = None,
               peephole: Tensor | None = None, ln: tuple[Tensor, Tensor, Tensor, Tensor] | None = None,
               coupled: bool = False, recurrent_mask: Tensor | None = None,
               zoneout: tuple[Tensor, Tensor] | float | None = None, records: bool = True,
               edits: dict[str, tuple[Tensor, Tensor]] | None = None):
    """One LSTM layer in one direction over a padded time-major batch; the equations are in the module docstring.

    Args (T steps, B batch, I input, H hidden, P projection, R = P with ``w_hr`` else H):
        x (T, B, I); h0 (B, R); c0 (B, H); w_ih (4H, I), w_hh (4H, R), b_ih, b_hh (4H,) or None (rows i, f, g, o);
        w_hr (P, H) or None; lengths None or int64 (B,) with values in [0, T]; peephole None or (3, H) rows
        p_i, p_f, p_o; ln None or (gamma_ih (4H,), gamma_hh (4H,), gamma_c (H,), beta_c (H,)); coupled: f = 1 - i
        (row block f of the weights is then unused); recurrent_mask None or (B, R), already scaled by 1/(1-p);
        zoneout None, (z_h (T, B, R), z_c (T, B, H)) 0/1 keep-masks in the state order (h, c) (training), or a
        float p in [0, 1) (eval).
        records: return gates and c_seq; when False and no backward will follow, the call streams (the a_x GEMM
        and the gate buffers cover a chunk of steps at a time, so its memory besides y does not grow with T)
        and gates, c_seq come back empty, (0, B, 4H) and (0, B, H).
        edits: interventions (:mod:`lstmkit.interventions`), None or ``{record: (keep, value)}`` over i, f, g, o,
        c, h: ``v' = keep * v + value`` of shape (T, B, H) ((T, B, R) for h), applied where the record is computed
        (the gates after their activation; c as c' is computed, or after zoneout's mix with zoneout; h after the
        projection and zoneout's mix); gradients pass times keep. The records returned are the edited values.
        Every floating tensor but the masks and edits must have x's dtype: float32, float64 or bfloat16.

    Returns ``(y (T, B, R), h_n (B, R), c_n (B, H), gates (T, B, 4H), c_seq (T, B, H))``. y, h_n and c_n carry
    gradients to x, h0, c0 and every weight, bias, peephole and ln parameter; gates (activated i, f, g, o) and
    c_seq (the cell state after each step) are records without gradient. For bfloat16 the GEMMs run in bfloat16
    while the cell state and the pointwise math stay in float32, so gates and c_seq are float32 (y, h_n, c_n are
    bfloat16). Double backward is not supported.
    """
    T, B, I = check_x(x)
    dt = x.dtype
    if not isinstance(w_ih, Tensor) or w_ih.dim() != 2 or w_ih.shape[0] % 4:
        raise InputError(f"`w_ih` must be (4H, I), got {getattr(w_ih, 'shape', type(w_ih).__name__)}")
    H = w_ih.shape[0] // 4
    expect("w_ih", w_ih, (4 * H, I), dt, " (its second dimension must equal x's input size I)")
    if w_hr is not None:
        if not isinstance(w_hr, Tensor) or w_hr.dim() != 2:
            raise InputError(f"`w_hr` must be (P, H={H}), got {getattr(w_hr, 'shape', type(w_hr).__name__)}")
        expect("w_hr", w_hr, (w_hr.shape[0], H), dt)
    R = w_hr.shape[0] if w_hr is not None else H
    expect("w_hh", w_hh, (4 * H, R), dt, f" (R = {'P' if w_hr is not None else 'H'} = {R})")
    expect("h0", h0, (B, R), dt)
    expect("c0", c0, (B, H), dt)
    for name, b in (("b_ih", b_ih), ("b_hh", b_hh)):
        if b is not None:
            expect(name, b, (4 * H,), dt)
    if peephole is not None:
        expect("peephole", peephole, (3, H), dt)
    if ln is not None:
        if not isinstance(ln, (tuple, list)) or len(ln) != 4:
            raise InputTypeError("`ln` must be None or a tuple (gamma_ih, gamma_hh, gamma_c, beta_c)")
        for name, p, n in zip(("gamma_ih", "gamma_hh", "gamma_c", "beta_c"), ln, (4 * H, 4 * H, H, H),
                              strict=True):
            expect(f"ln {name}", p, (n,), dt)
    acc = torch.float32 if dt == torch.bfloat16 else dt
    lengths = check_lengths(lengths, T, B)
    recurrent_mask = check_mask(recurrent_mask, B, R, acc)
    z_h = z_c = None
    zoneout_p = 0.0
    if isinstance(zoneout, (tuple, list)):
        if len(zoneout) != 2:
            raise InputTypeError("`zoneout` must be None, a float p (eval) or a tuple of masks (z_h, z_c)")
        expect("zoneout z_h", zoneout[0], (T, B, R), None)
        expect("zoneout z_c", zoneout[1], (T, B, H), None)
        z_h, z_c = (z.to(acc).contiguous() for z in zoneout)
    elif isinstance(zoneout, (int, float)) and is_probability(zoneout):
        zoneout_p = float(zoneout)
    elif zoneout is not None:
        raise InputTypeError(f"`zoneout` must be None, a float or a tuple of masks, got {type(zoneout).__name__}")
    edit_keep, edit_value = check_edits(edits, dict(i=H, f=H, g=H, o=H, c=H, h=R), T, B, acc)
    if not build.is_available():
        raise RuntimeError(build.unavailable_reason())
    gammas = tuple(ln) if ln is not None else (None,) * 4
    # Without a backward to come, the engine keeps one step of what only backward reads (less memory, faster).
    save = backward_follows(x, h0, c0, w_ih, w_hh, b_ih, b_hh, w_hr, peephole, *gammas)
    # The C++ side's arguments, made with differentiable torch ops (autograd takes db to b_ih and b_hh, dc0 to c0's
    # dtype): the bias b_ih + b_hh and the peepholes in the accumulation dtype, zeros where the layer has none.
    given = [b.to(acc) for b in (b_ih, b_hh) if b is not None]
    bias = (given[0] + given[1] if len(given) == 2 else given[0].contiguous() if given    # (4H)
            else torch.zeros(4 * H, dtype=acc))
    peep = _c(peephole, acc) if peephole is not None else torch.zeros(3, H, dtype=acc)  # (3, H)
    g_ih, g_hh, g_c, b_c = (_c(g, acc) for g in gammas)
    y, h_n, c_n, gates, c_seq = ops.lstm(
        _c(x), _c(h0), _c(c0, acc), _c(w_ih), _c(w_hh), bias, peep, _c(w_hr), g_ih, g_hh, g_c, b_c, lengths,
        recurrent_mask, z_h, z_c, zoneout_p, bool(coupled), save, bool(records), edit_keep, edit_value)[:5]
    return y, h_n, c_n, gates, c_seq


def _c(t: Tensor | None, dtype: torch.dtype | None = None) -> Tensor | None:
    if t is None:
        return None
    return (t if dtype is None else t.to(dtype)).contiguous()
