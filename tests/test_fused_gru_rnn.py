"""The compiled GRU and Elman RNN layers (lstmkit.engines.fused.gru_rnn) against a per-step torch loop."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from lstmkit.engines import fused
from lstmkit.errors import InputError
from parity import assert_close_or_unused

pytestmark = pytest.mark.skipif(not fused.is_available(), reason=f"fused engine: {fused.unavailable_reason()}")


def reference(kind, x, h0, w_ih, w_hh, b_ih, b_hh, lengths=None, recurrent_mask=None, zoneout=None):
    """The spec, one step at a time; autograd differentiates it."""
    h = h0                                                                      # (B, H)
    ys, records = [], []
    for t in range(x.shape[0]):
        h_in = h if recurrent_mask is None else h * recurrent_mask
        a_x, a_h = x[t] @ w_ih.T, h_in @ w_hh.T                                 # (B, G) each
        if b_ih is not None:
            a_x, a_h = a_x + b_ih, a_h + b_hh
        if kind == "gru":
            x_r, x_z, x_n = a_x.chunk(3, dim=1)
            h_r, h_z, h_n = a_h.chunk(3, dim=1)
            r, z = torch.sigmoid(x_r + h_r), torch.sigmoid(x_z + h_z)
            n = torch.tanh(x_n + r * h_n)
            h_new = (1 - z) * n + z * h
            rec = torch.cat([r, z, n], dim=1)
        else:
            rec = a_x + a_h
            h_new = torch.tanh(rec) if kind == "tanh" else torch.relu(rec)
        if isinstance(zoneout, torch.Tensor):
            h_new = zoneout[t] * h + (1 - zoneout[t]) * h_new
        elif zoneout is not None:
            h_new = zoneout * h + (1 - zoneout) * h_new
        if lengths is not None:                                                 # past the end: keep, record 0
            valid = (t < lengths).unsqueeze(1)                                  # (B, 1)
            h_new = torch.where(valid, h_new, h)
            ys.append(torch.where(valid, h_new, 0.0))
            records.append(torch.where(valid, rec, 0.0))
        else:
            ys.append(h_new)
            records.append(rec)
        h = h_new
    if not ys:                                                                  # no steps
        G = w_ih.shape[0]
        return x.new_zeros(0, *h0.shape), h, x.new_zeros(0, h0.shape[0], G)
    return torch.stack(ys), h, torch.stack(records)


@st.composite
def configs(draw):
    kind = draw(st.sampled_from(["gru", "tanh", "relu"]))
    T, B, I, H = draw(st.integers(0, 7)), draw(st.integers(1, 5)), draw(st.integers(1, 6)), draw(st.integers(1, 7))
    return dict(kind=kind, T=T, B=B, I=I, H=H, bias=draw(st.booleans()), lengths=draw(st.booleans()),
                mask=draw(st.booleans()), zoneout=draw(st.sampled_from([None, "mask", 0.3])))


def make(cfg, dtype):
    g = torch.Generator().manual_seed(0)
    T, B, I, H = cfg["T"], cfg["B"], cfg["I"], cfg["H"]
    G = 3 * H if cfg["kind"] == "gru" else H

    def p(*shape):
        return (torch.rand(*shape, generator=g, dtype=torch.float64) - 0.5).to(dtype).requires_grad_()

    args = dict(x=p(T, B, I), h0=p(B, H), w_ih=p(G, I), w_hh=p(G, H), b_ih=p(G) if cfg["bias"] else None,
                b_hh=p(G) if cfg["bias"] else None)
    opts = {}
    if cfg["lengths"]:
        opts["lengths"] = torch.randint(0, T + 1, (B,), generator=g)
    if cfg["mask"]:
        opts["recurrent_mask"] = torch.randint(0, 2, (B, H), generator=g).to(dtype) / 0.7
    if cfg["zoneout"] == "mask":
        opts["zoneout"] = torch.randint(0, 2, (T, B, H), generator=g).to(dtype)
    elif cfg["zoneout"] is not None:
        opts["zoneout"] = cfg["zoneout"]
    return args, opts


def run_engine(kind, args, opts):
    if kind == "gru":
        return fused.gru_layer(*args.values(), **opts)
    return fused.rnn_layer(*args.values(), nonlinearity=kind, **opts)


def outputs_and_grads(fn, args):
    y, h_n, rec = fn()
    loss = (y * torch.linspace(-1, 1, y.numel(), dtype=y.dtype).view_as(y)).sum() + (h_n * 0.5).sum()
    params = [a for a in args.values() if a is not None]
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    return [y.detach(), h_n.detach(), rec.detach()], grads


def check(cfg, dtype, tol):
    args, opts = make(cfg, dtype)
    out_a, grads_a = outputs_and_grads(lambda: run_engine(cfg["kind"], args, opts), args)
    out_b, grads_b = outputs_and_grads(lambda: reference(cfg["kind"], *args.values(), **opts), args)
    assert_close_or_unused(out_a + list(grads_a), out_b + list(grads_b), tol)


@given(configs())
def test_matches_a_per_step_loop_in_float32(cfg):
    check(cfg, torch.float32, 1e-5)


@given(configs())
def test_matches_a_per_step_loop_in_float64(cfg):
    check(cfg, torch.float64, 1e-10)


# Backward runs in chunks of ceil(1024 / B) steps: at B = 130 that is 8, so T = 20 gives chunks of 4, 8 and 8.
@pytest.mark.parametrize("kind", ["gru", "tanh"])
def test_backward_across_chunks_matches_a_per_step_loop(kind):
    check(dict(kind=kind, T=20, B=130, I=5, H=6, bias=True, lengths=True, mask=True, zoneout="mask"),
          torch.float64, 1e-10)


@pytest.mark.parametrize("kind", ["gru", "tanh", "relu"])
def test_gradcheck_float64(kind):
    cfg = dict(kind=kind, T=4, B=3, I=2, H=3, bias=True, lengths=True, mask=True, zoneout="mask")
    args, opts = make(cfg, torch.float64)
    names = list(args)

    def fn(*tensors):
        y, h_n, _ = run_engine(kind, dict(zip(names, tensors, strict=True)), opts)
        return y, h_n

    assert torch.autograd.gradcheck(fn, tuple(args.values()))


@pytest.mark.parametrize("kind", ["gru", "tanh"])
def test_two_runs_are_bitwise_equal(kind):
    cfg = dict(kind=kind, T=30, B=33, I=20, H=40, bias=True, lengths=True, mask=False, zoneout=None)
    runs = []
    for _ in range(2):
        args, opts = make(cfg, torch.float32)
        runs.append(outputs_and_grads(lambda a=args, o=opts: run_engine(kind, a, o), args))
    for a, b in zip(runs[0][0] + list(runs[0][1]), runs[1][0] + list(runs[1][1]), strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("kind", ["gru", "tanh", "relu"])
def test_bfloat16_is_close_to_float32(kind):
    cfg = dict(kind=kind, T=12, B=4, I=8, H=16, bias=True, lengths=True, mask=True, zoneout="mask")
    args32, opts = make(cfg, torch.float32)
    args16 = {k: v.detach().bfloat16().requires_grad_() for k, v in args32.items()}
    (y32, h32, r32), g32 = outputs_and_grads(lambda: run_engine(kind, args32, opts), args32)
    (y16, h16, r16), g16 = outputs_and_grads(lambda: run_engine(kind, args16, opts), args16)
    assert y16.dtype == torch.bfloat16 and r16.dtype == torch.float32
    for a, b in zip([y16, h16, r16, *g16], [y32, h32, r32, *g32], strict=True):  # bf16 rounding: 1e-2 relative
        assert (a.float() - b).norm() <= 1e-2 * b.norm()


def test_wrong_shape_names_the_argument():
    x = torch.randn(3, 2, 4)
    with pytest.raises(InputError, match=r"`w_ih` must have shape \(15, 4\)"):
        fused.gru_layer(x, torch.zeros(2, 5), torch.randn(15, 3), torch.randn(15, 5), None, None)
    with pytest.raises(InputError, match="`nonlinearity` must be 'tanh' or 'relu', got 'sigmoid'"):
        fused.rnn_layer(x, torch.zeros(2, 5), torch.randn(5, 4), torch.randn(5, 5), None, None,
                                nonlinearity="sigmoid")
    with pytest.raises(InputError, match="`b_ih` and `b_hh` must both be given"):
        fused.rnn_layer(x, torch.zeros(2, 5), torch.randn(5, 4), torch.randn(5, 5), torch.zeros(5), None)


@pytest.mark.parametrize("kind", ["gru", "tanh"])
def test_empty_batch_runs_forward_and_backward(kind):
    cfg = dict(kind=kind, T=5, B=0, I=3, H=4, bias=True, lengths=False, mask=False, zoneout=None)
    args, _ = make(cfg, torch.float32)
    (y, h_n, _), grads = outputs_and_grads(lambda: run_engine(kind, args, {}), args)
    assert y.shape == (5, 0, 4) and h_n.shape == (0, 4)
    assert grads[2].shape == args["w_ih"].shape and not grads[2].any()

