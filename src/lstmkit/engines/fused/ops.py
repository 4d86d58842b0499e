"""The fused engine's C++ layer functions as torch custom ops (``torch.ops.lstmkit.*``), so that torch.compile,
torch.export, torch.jit.trace and FakeTensor tracing see one op per layer and direction instead of an opaque
Python call into a pybind module.

Four ops, each a C++ function of ``csrc/layers.h`` with its options object flattened into arguments (a schema
takes tensors and scalars, not objects): ``lstm_forward``, ``lstm_backward``, ``gru_rnn_forward``,
``gru_rnn_backward``. Each has a fake implementation (the output shapes and dtypes, from the input shapes alone:
what torch.compile and torch.export run while tracing) and the forward ops have registered autograd, whose backward
is the backward op, so a compiled or exported training step runs the hand-written BPTT too.

Arguments are those of the C++ side (``bias`` = b_ih + b_hh in the accumulation dtype, zeros for a layer without
biases; ``peephole`` zeros for none), prepared by :mod:`.lstm` and :mod:`.gru_rnn` with ordinary (differentiable)
torch ops. What the C++ side returns undefined (a term the layer lacks) comes back as an empty tensor ``(0,)``:
a custom op returns tensors only. The ops are called only from this package (:func:`lstm`, :func:`gru_rnn`, the
registered backward), so a new argument goes where it reads best (the edit lists are last, without defaults).

Interventions (:mod:`lstmkit.interventions`) reach the C++ side as ``edit_keep``, ``edit_value``: one entry per
record (:func:`.checks.check_edits`; both empty for no edits), an empty placeholder for a record without an edit.
``Tensor[]`` with placeholders, not ``Tensor?[]``: torch.jit.trace cannot record an op taking ``Tensor?[]``
("unsupported input list type: Tensor?", torch 2.13). Forward and backward both read them (gradients pass times
keep), so setup_context saves them.

Eager calls skip the op layer: :func:`lstm` and :func:`gru_rnn` call the same implementations through a plain
autograd.Function (:class:`_LstmDirect`, :class:`_GruRnnDirect`) unless a tracer is recording (:func:`tracing`),
and without the Function when no backward follows (``save`` false: its apply would build a graph node and a context
for nothing, a cost a one-row layer's call notices).
The op's dispatch (schema parsing, the registered autograd's wrapping) costs tens of microseconds a call, which
is most of a small layer's time. Both paths run the same functions for the arguments, the C++ calls, what is saved
and the gradients, so they cannot drift (tests/test_compile_export.py checks they agree bitwise).

The C++ kernels run without the GIL (``csrc/module.cpp``), so Python threads overlap with them as with torch's
own kernels.
"""

# No `from __future__ import annotations` here, and typing.Optional: torch.library.custom_op reads the schema from
# these annotations, and torch 2.4's reader takes evaluated typing.OptTensor, not strings.
from typing import Optional

import torch
from torch import Tensor
from torch.utils._python_dispatch import _get_current_dispatch_mode

from . import build, cpu

OptTensor = Optional[Tensor]  # noqa: UP045  (the schema's Tensor?, see above)
Tensors = list[Tensor]  # the schema's Tensor[]

EPS = 1e-5  # layer norm's epsilon, as torch.nn.LayerNorm's default
KINDS = {"tanh": 0, "relu": 1, "gru": 2}  # GruRnnOptions.cell (csrc/gru_rnn_cell.h CellKind)


def tracing(x: Tensor) -> bool:
    """Whether this call is being recorded rather than run eagerly: torch.compile, torch.export (and AOTAutograd's
    make_fx under them), torch.jit.trace, or any dispatch mode or tensor subclass (FakeTensor, functionalisation).
    Those see the custom op as one node; an eager call takes the direct path."""
    exporting = getattr(torch.compiler, "is_exporting", None)   # torch >= 2.6; before, export also compiles
    return (torch.compiler.is_compiling() or torch.jit.is_tracing() or (exporting is not None and exporting())
            or type(x) is not Tensor or _get_current_dispatch_mode() is not None)


def _acc(dt: torch.dtype) -> torch.dtype:
    return torch.float32 if dt == torch.bfloat16 else dt


def _none(t: Tensor) -> OptTensor:
    """An empty placeholder (a term the layer lacks) as the C++ side's absent optional."""
    return None if t.dim() == 1 and t.numel() == 0 else t


def _placeholders(edits: list[OptTensor], like: Tensor) -> list[Tensor]:
    """check_edits' lists as the ops take them: an empty placeholder for a record without an edit."""
    return [_or_empty(t, like) for t in edits]


def _or_empty(t: OptTensor, like: Tensor) -> Tensor:
    return t if t is not None else like.new_empty(0)


def _contiguous(t: OptTensor, dtype: torch.dtype) -> OptTensor:
    return None if t is None else t.to(dtype).contiguous()


class _EmptyEach:
    """A fresh empty placeholder per call (an op's outputs may not alias each other)."""

    def __init__(self, like: Tensor):
        self.like = like

    def __call__(self) -> Tensor:
        return self.like.new_empty(0)


# -- LSTM -------------------------------------------------------------------------------------------------------


def _lstm_forward(x: Tensor, h0: Tensor, c0: Tensor, w_ih: Tensor, w_hh: Tensor, bias: Tensor, peephole: Tensor,
                  w_hr: OptTensor, gamma_ih: OptTensor, gamma_hh: OptTensor, gamma_c: OptTensor,
                  beta_c: OptTensor, lengths: OptTensor, recurrent_mask: OptTensor, z_h: OptTensor,
                  z_c: OptTensor, zoneout_p: float, coupled: bool, save: bool, records: bool,
                  edit_keep: Tensors, edit_value: Tensors) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor,
                                                                          Tensor, Tensor, Tensor, Tensor, Tensor,
                                                                          Tensor]:
    """One LSTM layer in one direction (:func:`lstmkit.engines.fused.lstm_layer` has the contract). Returns y,
    h_n, c_n, gates, c_seq, then what backward reads: hin, hraw, cnew, tanhm, mean, rstd."""
    engine = build.module()
    T, B, _ = x.shape
    if T == 0:  # the C++ side returns the first five only; all as the fake implementation shapes them
        out = [t.zero_() for t in _lstm_forward_fake(x, h0, c0, w_ih, w_hh, bias, peephole, w_hr, gamma_ih, gamma_hh,
                                                      gamma_c, beta_c, lengths, recurrent_mask, z_h, z_c, zoneout_p,
                                                      coupled, save, records, edit_keep, edit_value)]
        out[1], out[2] = h0.clone(), c0.to(x.dtype, copy=True)
        return tuple(out)  # type: ignore[return-value]
    opts = _lstm_options(engine, x, w_ih, w_hh, lengths, recurrent_mask, z_h, z_c, zoneout_p, coupled, save, records,
                         False, False, edit_keep, edit_value)
    with torch.autocast("cpu", enabled=False):  # the engine picks its own dtypes
        out = engine.forward(x, h0, c0, w_ih, w_hh, bias, peephole, w_hr, gamma_ih, gamma_hh, gamma_c, beta_c, opts)
    return tuple(_or_empty(t, x) for t in out)  # type: ignore[return-value]


def _lstm_options(engine, x, w_ih, w_hh, lengths, recurrent_mask, z_h, z_c, zoneout_p, coupled, save, records,
                  has_bias, has_peephole, edit_keep, edit_value):
    """The C++ side's LstmOptions (csrc/layers.h), by name; the GEMM library is chosen here, per call."""
    B, (GH, R) = x.shape[1], w_hh.shape
    opts = engine.LstmOptions()
    opts.lengths, opts.recurrent_mask, opts.z_h, opts.z_c = lengths, recurrent_mask, z_h, z_c
    opts.zoneout_p, opts.coupled, opts.eps, opts.gemm = zoneout_p, coupled, EPS, cpu.gemm_id(x.dtype, B * R * GH)
    opts.save, opts.records, opts.has_bias, opts.has_peephole = save, records, has_bias, has_peephole
    if edit_keep:
        opts.edit_keep, opts.edit_value = [_none(t) for t in edit_keep], [_none(t) for t in edit_value]
    return opts


lstm_forward = torch.library.custom_op("lstmkit::lstm_forward", mutates_args=(), device_types="cpu")(_lstm_forward)


@lstm_forward.register_fake
def _lstm_forward_fake(x, h0, c0, w_ih, w_hh, bias, peephole, w_hr, gamma_ih, gamma_hh, gamma_c, beta_c, lengths,
                       recurrent_mask, z_h, z_c, zoneout_p, coupled, save, records, edit_keep, edit_value):
    T, B, _ = x.shape
    GH, R = w_hh.shape
    H = GH // 4
    acc = bias.dtype
    TS = T if save else 1                   # what only backward reads: every step, or one
    kept = T if (save or records) else 0    # gates and c_seq: every step, or none (the call streamed)
    none = _EmptyEach(x)
    return (x.new_empty(T, B, R), x.new_empty(B, R), x.new_empty(B, H),
            x.new_empty(kept, B, GH, dtype=acc), x.new_empty(kept, B, H, dtype=acc),
            x.new_empty(T if save else 2, B, R),                                     # hin
            x.new_empty(TS, B, H) if w_hr is not None else none(),                     # hraw
            x.new_empty(TS, B, H, dtype=acc) if (z_c is not None or zoneout_p > 0) else none(),  # cnew
            x.new_empty(TS, B, H, dtype=acc),                                        # tanhm
            x.new_empty(TS, B, 3, dtype=acc) if gamma_ih is not None else none(),      # mean
            x.new_empty(TS, B, 3, dtype=acc) if gamma_ih is not None else none())      # rstd


def _lstm_backward_impl(dy: OptTensor, dh_n: OptTensor, dc_n: OptTensor, x: Tensor, c0: Tensor, w_ih: Tensor,
                        w_hh: Tensor, bias: Tensor, peephole: Tensor, w_hr: OptTensor, gamma_ih: OptTensor,
                        gamma_hh: OptTensor, gamma_c: OptTensor, beta_c: OptTensor, hin: Tensor, hraw: Tensor,
                        gates: Tensor, c_seq: Tensor, cnew: Tensor, tanhm: Tensor, mean: Tensor, rstd: Tensor,
                        lengths: OptTensor, recurrent_mask: OptTensor, z_h: OptTensor, z_c: OptTensor,
                        zoneout_p: float, coupled: bool, need_dx: bool, has_bias: bool, has_peephole: bool,
                        edit_keep: Tensors, edit_value: Tensors) -> tuple[Tensor, Tensor, Tensor, Tensor,
                                                                                Tensor, Tensor, Tensor, Tensor,
                                                                                Tensor, Tensor, Tensor, Tensor]:
    """lstm_forward's BPTT. Returns dx, dh0, dc0, dw_ih, dw_hh, db, dw_hr, dpeephole, dgamma_ih, dgamma_hh,
    dgamma_c, dbeta_c (empty where the layer has no such input, dx unless need_dx)."""
    if x.shape[0] == 0:  # no steps: the state passed straight through, nothing else was used
        out = _lstm_backward_fake(dy, dh_n, dc_n, x, c0, w_ih, w_hh, bias, peephole, w_hr, gamma_ih, gamma_hh,
                                  gamma_c, beta_c, hin, hraw, gates, c_seq, cnew, tanhm, mean, rstd, lengths,
                                  recurrent_mask, z_h, z_c, zoneout_p, coupled, need_dx, has_bias, has_peephole,
                                  edit_keep, edit_value)
        out = [t.zero_() for t in out]
        if dh_n is not None:
            out[1] = dh_n.to(x.dtype, copy=True)
        if dc_n is not None:
            out[2] = dc_n.to(x.dtype, copy=True)
        return tuple(out)  # type: ignore[return-value]
    engine = build.module()
    dy, dh_n, dc_n = (_contiguous(d, x.dtype) for d in (dy, dh_n, dc_n))  # autograd's grads may be strided views
    opts = _lstm_options(engine, x, w_ih, w_hh, lengths, recurrent_mask, z_h, z_c, zoneout_p, coupled, True, True,
                         has_bias, has_peephole, edit_keep, edit_value)
    with torch.autocast("cpu", enabled=False):
        grads = engine.backward(dy, dh_n, dc_n, x, c0, w_ih, w_hh, bias, peephole, w_hr, gamma_ih, gamma_hh, gamma_c,
                                beta_c, hin, _none(hraw), gates, c_seq, _none(cnew), tanhm, _none(mean), _none(rstd),
                                need_dx, opts)
    return tuple(_or_empty(g, x) for g in grads)  # type: ignore[return-value]


lstm_backward = torch.library.custom_op("lstmkit::lstm_backward", mutates_args=(),
                                        device_types="cpu")(_lstm_backward_impl)


@lstm_backward.register_fake
def _lstm_backward_fake(dy, dh_n, dc_n, x, c0, w_ih, w_hh, bias, peephole, w_hr, gamma_ih, gamma_hh, gamma_c, beta_c,
                        hin, hraw, gates, c_seq, cnew, tanhm, mean, rstd, lengths, recurrent_mask, z_h, z_c,
                        zoneout_p, coupled, need_dx, has_bias, has_peephole, edit_keep, edit_value):
    T, B, I = x.shape
    GH, R = w_hh.shape
    H = GH // 4
    acc = bias.dtype
    none = _EmptyEach(x)
    ln = gamma_ih is not None
    return (x.new_empty(T, B, I) if need_dx else none(), x.new_empty(B, R), x.new_empty(B, H), x.new_empty(GH, I),
            x.new_empty(GH, R), x.new_empty(GH, dtype=acc) if has_bias else none(),
            x.new_empty(R, H) if w_hr is not None else none(),
            x.new_empty(3, H, dtype=acc) if has_peephole else none(),
            *((x.new_empty(n, dtype=acc) if ln else none()) for n in (GH, GH, H, H)))


_LSTM_SAVED = ("x", "c0", "w_ih", "w_hh", "bias", "peephole", "w_hr", "gamma_ih", "gamma_hh", "gamma_c", "beta_c",
               "lengths", "recurrent_mask", "z_h", "z_c")


def _lstm_setup_context(ctx, inputs, output):
    (x, h0, c0, w_ih, w_hh, bias, peephole, w_hr, gamma_ih, gamma_hh, gamma_c, beta_c, lengths, recurrent_mask, z_h,
     z_c, zoneout_p, coupled, save, records, edit_keep, edit_value) = inputs
    if not save:  # the caller said no backward follows (lstm_layer decides it, as autograd would)
        ctx.unsaved = True
        return
    ctx.unsaved = False
    ctx.scalars = (zoneout_p, coupled, len(edit_keep))
    ctx.save_for_backward(x, c0, w_ih, w_hh, bias, peephole, w_hr, gamma_ih, gamma_hh, gamma_c, beta_c, lengths,
                          recurrent_mask, z_h, z_c, *output[3:], *edit_keep, *edit_value)
    ctx.mark_non_differentiable(*output[3:])


def _edits_saved(saved: tuple, n: int) -> tuple[tuple, list, list]:
    """Split saved tensors into the rest and the n edit_keep and n edit_value saved after them."""
    rest = saved[:len(saved) - 2 * n]
    return rest, list(saved[len(rest):len(rest) + n]), list(saved[len(rest) + n:])


def _edits_grads(ctx, op: bool) -> tuple:
    """The (absent) gradients of edit_keep and edit_value. An autograd.Function wants None per argument; the op's
    autograd flattens a list of tensors and wants a list of as many Nones (torch/_library/autograd.py)."""
    return ([None] * ctx.scalars[-1],) * 2 if op else (None, None)


def _lstm_backward_with(backward_op, op: bool):
    """The backward of lstm_forward, calling backward_op: the op (traced calls, op=True) or its implementation."""

    def backward(ctx, dy, dh_n, dc_n, *_records):
        return _lstm_grads(ctx, dy, dh_n, dc_n, backward_op) + _edits_grads(ctx, op)

    return backward


def _lstm_grads(ctx, dy, dh_n, dc_n, backward_op):
    if ctx.unsaved:
        raise RuntimeError("lstmkit: backward through an LSTM layer run without gradients (save=False)")
    zoneout_p, coupled, n_edits = ctx.scalars
    saved, edit_keep, edit_value = _edits_saved(ctx.saved_tensors, n_edits)
    (x, c0, w_ih, w_hh, bias, peephole, w_hr, gamma_ih, gamma_hh, gamma_c, beta_c, lengths, recurrent_mask, z_h, z_c,
     gates, c_seq, hin, hraw, cnew, tanhm, mean, rstd) = saved
    need = ctx.needs_input_grad
    # bias and peephole need a grad where the layer has them (a layer without gets constant zeros) and they train
    has_bias, has_peephole = need[5], need[6]
    (dx, dh0, dc0, dw_ih, dw_hh, db, dw_hr, dpeep, dg_ih, dg_hh, dg_c, db_c) = backward_op(
        dy, dh_n, dc_n, x, c0, w_ih, w_hh, bias, peephole, w_hr, gamma_ih, gamma_hh, gamma_c, beta_c, hin, hraw,
        gates, c_seq, cnew, tanhm, mean, rstd, lengths, recurrent_mask, z_h, z_c, zoneout_p, coupled, need[0],
        has_bias, has_peephole, edit_keep, edit_value)
    ln = gamma_ih is not None

    def given(g, present=True):
        return g if present else None

    return (given(dx, need[0]), dh0, dc0.to(c0.dtype), dw_ih, dw_hh, given(db, has_bias),
            given(dpeep, has_peephole), given(dw_hr, w_hr is not None), given(dg_ih, ln), given(dg_hh, ln),
            given(dg_c, ln), given(db_c, ln)) + (None,) * 8


lstm_forward.register_autograd(_lstm_backward_with(lstm_backward, True), setup_context=_lstm_setup_context)


TWICE = ("lstmkit's fused engine computes its backward by hand and cannot differentiate it again (double backward, "
         "e.g. a gradient penalty): build the module with backend='torch' (plain configurations) or "
         "backend='reference' for that")


def _not_twice(grads: tuple) -> tuple:
    """The grads of a backward run with create_graph=True: each differentiable only into an error that says why
    and what to do. torch's once_differentiable does this only when an incoming grad requires grad; otherwise a
    later differentiation fails with "element 0 of tensors does not require grad", which names neither the engine
    nor the remedy."""
    tensors = [g for g in grads if isinstance(g, Tensor)]
    if not tensors:
        return grads
    err = torch._C._functions.DelayedError(TWICE.encode(), len(tensors))
    out = err(*[g.detach().requires_grad_() for g in tensors])
    each = iter(out if isinstance(out, tuple) else (out,))
    return tuple(next(each) if isinstance(g, Tensor) else g for g in grads)


def _direct(name: str, forward, setup_context, backward) -> type[torch.autograd.Function]:
    """An op for eager calls: its implementation ``forward``, ``setup_context`` and ``backward`` as an
    autograd.Function, without the op's dispatch."""

    def fwd(ctx, *args):            # (not the setup_context style: its apply binds the arguments by inspect, ~50 us)
        out = forward(*args)
        setup_context(ctx, args, out)
        return out

    def bwd(ctx, *grads):
        with torch.no_grad():
            out = backward(ctx, *grads)
        return _not_twice(out) if torch.is_grad_enabled() else out

    return type(name, (torch.autograd.Function,), {
        "__doc__": f"{name}: the op's implementation, setup_context and backward without its dispatch.",
        "forward": staticmethod(fwd),
        "backward": staticmethod(bwd)})


_LstmDirect = _direct("_LstmDirect", _lstm_forward, _lstm_setup_context,
                      _lstm_backward_with(_lstm_backward_impl, False))


def lstm(*args) -> tuple[Tensor, ...]:
    """lstm_forward's arguments in its order, edit_keep and edit_value as check_edits gives them: the op while a
    tracer records (:func:`tracing`), else direct."""
    args = (*args[:-2], _placeholders(args[-2], args[0]), _placeholders(args[-1], args[0]))
    if tracing(args[0]):
        return torch.ops.lstmkit.lstm_forward(*args)
    return _LstmDirect.apply(*args) if args[18] else _lstm_forward(*args)  # save: a backward follows


# -- GRU and Elman RNN ------------------------------------------------------------------------------------------


def _gru_rnn_forward(x: Tensor, h0: Tensor, w_ih: Tensor, w_hh: Tensor, b_ih: Tensor, b_hh: Tensor,
                     lengths: OptTensor, recurrent_mask: OptTensor, z_h: OptTensor, zoneout_p: float,
                     cell: int, save: bool, records: bool, edit_keep: Tensors,
                     edit_value: Tensors) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """One GRU (cell 2) or Elman RNN (0 tanh, 1 relu) layer in one direction (:func:`lstmkit.engines.fused.gru_layer`
    has the contract). Returns y, h_n, gates, then what backward reads: hin, hn, hseq."""
    engine = build.module()
    opts = _gru_rnn_options(engine, x, w_hh, lengths, recurrent_mask, z_h, zoneout_p, cell, save, records, False,
                            edit_keep, edit_value)
    with torch.autocast("cpu", enabled=False):
        out = engine.gru_rnn_forward(x, h0, w_ih, w_hh, b_ih, b_hh, opts)
    return tuple(_or_empty(t, x) for t in out)  # type: ignore[return-value]


def _gru_rnn_options(engine, x, w_hh, lengths, recurrent_mask, z_h, zoneout_p, cell, save, records, has_bias,
                     edit_keep, edit_value):
    """The C++ side's GruRnnOptions (csrc/layers.h), by name."""
    B, (GH, H) = x.shape[1], w_hh.shape
    opts = engine.GruRnnOptions()
    opts.cell, opts.lengths, opts.recurrent_mask, opts.z_h = cell, lengths, recurrent_mask, z_h
    opts.zoneout_p, opts.gemm, opts.has_bias = zoneout_p, cpu.gemm_id(x.dtype, B * H * GH), has_bias
    opts.save, opts.records = save, records
    if edit_keep:
        opts.edit_keep, opts.edit_value = [_none(t) for t in edit_keep], [_none(t) for t in edit_value]
    return opts


gru_rnn_forward = torch.library.custom_op("lstmkit::gru_rnn_forward", mutates_args=(),
                                          device_types="cpu")(_gru_rnn_forward)


@gru_rnn_forward.register_fake
def _gru_rnn_forward_fake(x, h0, w_ih, w_hh, b_ih, b_hh, lengths, recurrent_mask, z_h, zoneout_p, cell, save,
                          records, edit_keep, edit_value):
    T, B, _ = x.shape
    GH, H = w_hh.shape
    acc = b_ih.dtype
    gru = cell == KINDS["gru"]
    none = _EmptyEach(x)
    return (x.new_empty(T, B, H), x.new_empty(B, H), x.new_empty(T if (save or records) else 0, B, GH, dtype=acc),
            x.new_empty(T if save else 2, B, H),                                 # hin
            x.new_empty(T if save else 1, B, H, dtype=acc) if gru else none(),     # hn
            x.new_empty(T, B, H, dtype=acc) if gru and save else none())           # hseq


def _gru_rnn_backward_impl(dy: OptTensor, dh_n: OptTensor, x: Tensor, h0: Tensor, w_ih: Tensor, w_hh: Tensor,
                           hin: Tensor, gates: Tensor, hn: Tensor, hseq: Tensor, lengths: OptTensor,
                           recurrent_mask: OptTensor, z_h: OptTensor, zoneout_p: float, cell: int, need_dx: bool,
                           has_bias: bool, edit_keep: Tensors,
                           edit_value: Tensors) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """gru_rnn_forward's BPTT. Returns dx, dh0, dw_ih, dw_hh, db_ih, db_hh (empty where absent)."""
    if x.shape[0] == 0:  # no steps: the state passed straight through
        out = [t.zero_() for t in _gru_rnn_backward_fake(dy, dh_n, x, h0, w_ih, w_hh, hin, gates, hn, hseq, lengths,
                                                          recurrent_mask, z_h, zoneout_p, cell, need_dx, has_bias,
                                                          edit_keep, edit_value)]
        if dh_n is not None:
            out[1] = dh_n.to(x.dtype, copy=True)
        return tuple(out)  # type: ignore[return-value]
    engine = build.module()
    dy, dh_n = (_contiguous(d, x.dtype) for d in (dy, dh_n))
    opts = _gru_rnn_options(engine, x, w_hh, lengths, recurrent_mask, z_h, zoneout_p, cell, True, True, has_bias,
                            edit_keep, edit_value)
    with torch.autocast("cpu", enabled=False):
        grads = engine.gru_rnn_backward(dy, dh_n, x, h0, w_ih, w_hh, hin, gates, _none(hn), _none(hseq), need_dx,
                                        opts)
    dx, dh0, dw_ih, dw_hh, db_ih, db_hh = (_or_empty(g, x) for g in grads)
    if db_hh is db_ih:  # the RNN's two bias grads are one tensor; an op's outputs may not alias each other
        db_hh = db_ih.clone()
    return dx, dh0, dw_ih, dw_hh, db_ih, db_hh


gru_rnn_backward = torch.library.custom_op("lstmkit::gru_rnn_backward", mutates_args=(),
                                           device_types="cpu")(_gru_rnn_backward_impl)


@gru_rnn_backward.register_fake
def _gru_rnn_backward_fake(dy, dh_n, x, h0, w_ih, w_hh, hin, gates, hn, hseq, lengths, recurrent_mask, z_h, zoneout_p,
                           cell, need_dx, has_bias, edit_keep, edit_value):
    T, B, I = x.shape
    GH, H = w_hh.shape
    none = _EmptyEach(x)
    db = x.new_empty(GH, dtype=gates.dtype) if has_bias else none()
    return (x.new_empty(T, B, I) if need_dx else none(), x.new_empty(B, H), x.new_empty(GH, I), x.new_empty(GH, H),
            db, db.clone())


def _gru_rnn_setup_context(ctx, inputs, output):
    (x, h0, w_ih, w_hh, b_ih, b_hh, lengths, recurrent_mask, z_h, zoneout_p, cell, save, records, edit_keep,
     edit_value) = inputs
    ctx.unsaved = not save
    if not save:
        return
    ctx.scalars = (zoneout_p, cell, len(edit_keep))
    # hseq, not the output y: the caller may modify y in place (as torch.nn allows) before backward
    ctx.save_for_backward(x, h0, w_ih, w_hh, lengths, recurrent_mask, z_h, *output[2:], *edit_keep, *edit_value)
    ctx.mark_non_differentiable(*output[2:])


def _gru_rnn_backward_with(backward_op, op: bool):
    """The backward of gru_rnn_forward, calling backward_op: the op (traced calls, op=True) or its implementation."""

    def backward(ctx, dy, dh_n, *_records):
        if ctx.unsaved:
            raise RuntimeError("lstmkit: backward through a GRU/RNN layer run without gradients (save=False)")
        zoneout_p, cell, n_edits = ctx.scalars
        saved, edit_keep, edit_value = _edits_saved(ctx.saved_tensors, n_edits)
        x, h0, w_ih, w_hh, lengths, recurrent_mask, z_h, gates, hin, hn, hseq = saved
        need = ctx.needs_input_grad
        has_bias = need[4] or need[5]          # a layer without biases passes constant zeros
        dx, dh0, dw_ih, dw_hh, db_ih, db_hh = backward_op(
            dy, dh_n, x, h0, w_ih, w_hh, hin, gates, hn, hseq, lengths, recurrent_mask, z_h, zoneout_p, cell, need[0],
            has_bias, edit_keep, edit_value)
        return (dx if need[0] else None, dh0, dw_ih, dw_hh, db_ih if has_bias else None,
                db_hh if has_bias else None, *(None,) * 7, *_edits_grads(ctx, op))

    return backward


gru_rnn_forward.register_autograd(_gru_rnn_backward_with(gru_rnn_backward, True), setup_context=_gru_rnn_setup_context)


_GruRnnDirect = _direct("_GruRnnDirect", _gru_rnn_forward, _gru_rnn_setup_context,
                        _gru_rnn_backward_with(_gru_rnn_backward_impl, False))


def gru_rnn(*args) -> tuple[Tensor, ...]:
    """gru_rnn_forward's arguments in its order, edit_keep and edit_value as check_edits gives them: the op while a
    tracer records (:func:`tracing`), else direct."""
    args = (*args[:-2], _placeholders(args[-2], args[0]), _placeholders(args[-1], args[0]))
    if tracing(args[0]):
        return torch.ops.lstmkit.gru_rnn_forward(*args)
    return _GruRnnDirect.apply(*args) if args[11] else _gru_rnn_forward(*args)  # save: a backward follows


# -- double backward ---------------------------------------------------------------------------------------------


def _no_double_backward(ctx, *grads):
    raise RuntimeError("lstmkit's fused engine cannot differentiate twice (its BPTT is hand-written, with no "
                       "backward of its own); for double backward use backend='torch' (plain cells) or 'reference'")


def _keep_nothing(ctx, inputs, output):
    pass


lstm_backward.register_autograd(_no_double_backward, setup_context=_keep_nothing)
gru_rnn_backward.register_autograd(_no_double_backward, setup_context=_keep_nothing)
