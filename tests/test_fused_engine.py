"""backend="fused" against the reference engine over the configuration space, through the modules."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import lstmkit
from lstmkit.engines import fused
from parity import assert_close_or_unused, make_input, make_states, run_and_grads

pytestmark = pytest.mark.skipif(not fused.is_available(), reason=f"no compiled engine: {fused.unavailable_reason()}")


@st.composite
def configs(draw, min_size=1, max_size=6):
    H = draw(st.integers(max(2, min_size), max_size))
    kw = dict(input_size=draw(st.integers(min_size, max_size)), hidden_size=H, num_layers=draw(st.integers(1, 2)),
              bias=draw(st.booleans()), batch_first=draw(st.booleans()), bidirectional=draw(st.booleans()),
              proj_size=draw(st.integers(0, H - 1)), peephole=draw(st.booleans()), layer_norm=draw(st.booleans()),
              coupled=draw(st.booleans()), recurrent_dropout=draw(st.sampled_from([0.0, 0.3])),
              zoneout=draw(st.sampled_from([0.0, 0.2])), dropout=draw(st.sampled_from([0.0, 0.4])))
    form = draw(st.sampled_from(["batched", "unbatched", "packed", "packed_unsorted"]))
    return kw, form, draw(st.integers(1, 6)), draw(st.integers(1, 4)), draw(st.booleans()), draw(st.booleans())


def _pair(kw, dtype):
    torch.manual_seed(0)
    fast = lstmkit.LSTM(**kw, backend="fused", dtype=dtype)
    slow = lstmkit.LSTM(**kw, backend="reference", dtype=dtype)
    slow.load_state_dict(fast.state_dict())
    return fast, slow


def _check_against_reference(call, dtype, tol):
    kw, form, T, B, with_state, training = call
    fast, slow = _pair(kw, dtype)
    fast.train(training)
    slow.train(training)
    x = make_input(form, T, B, kw["input_size"], kw["batch_first"], dtype)
    hx = make_states("LSTM", fast, form, B, dtype) if with_state else None
    torch.manual_seed(9)                     # the same masks for both engines
    out_a, grads_a = run_and_grads(fast, x, hx)
    torch.manual_seed(9)
    out_b, grads_b = run_and_grads(slow, x, hx)
    assert_close_or_unused(out_a + list(grads_a), out_b + list(grads_b), tol)


@given(configs(min_size=4).filter(lambda call: not call[0]["layer_norm"]))
def test_fused_matches_reference_in_float32(call):
    _check_against_reference(call, torch.float32, 1e-5)


# Layer norm is ill-conditioned where its input has little variance, and over few features it often has: at
# h = 0 (torch.nn's default initial state) LN(h W_hh^T) has gradient 1/sqrt(eps) ~ 316 times its input's; with
# I = 1 or P = 1, LN(x W_ih^T) or LN(h W_hh^T) hardly depends on its input at all; over H = 4 cell units LN(c)
# amplifies rounding ~30x. The two engines sum in different orders, so float32 rounding (1e-7) grows to 2e-5 in
# single elements there, and to 1.1e-5 of a whole weight gradient's norm at H = 19 with peepholes. Layer norm is
# therefore checked elementwise to 1e-10 in float64 over the whole space (below), and in float32 for accuracy:
# at realistic widths (I, H, P >= 16) every output and gradient is within 1e-5 of the float64 result (by
# relative norm) or no further from it than twice the float32 reference engine is.
def _check_layer_norm_accuracy(call):
    kw, form, T, B, with_state, training = call
    fast, slow = _pair(kw, torch.float32)
    exact = lstmkit.LSTM(**kw, backend="reference", dtype=torch.float64)
    exact.load_state_dict({k: v.double() for k, v in fast.state_dict().items()})
    x = make_input(form, T, B, kw["input_size"], kw["batch_first"], torch.float32)
    hx = make_states("LSTM", fast, form, B, torch.float32) if with_state else None
    runs = []
    for module, x_, hx_ in ((fast, x, hx), (slow, x, hx),
                            (exact, x.double(), hx and tuple(h.double() for h in hx))):
        module.train(training)
        torch.manual_seed(9)                 # the same masks for every run (bernoulli draws alike in both dtypes)
        out, grads = run_and_grads(module, x_, hx_)
        runs.append(out + list(grads))
    for f, s, e in zip(*runs, strict=True):
        if e is None or f is None or s is None:   # no gradient reaches it: the others must have none or zeros
            assert all(t is None or t.abs().max() == 0 for t in (f, s, e))
            continue
        e = e.float()
        err_fused, err_reference = (f - e).norm(), (s - e).norm()
        assert err_fused <= max(1e-5 * e.norm(), 2 * err_reference)


@given(configs(min_size=16, max_size=24).filter(
    lambda call: call[0]["layer_norm"] and (call[0]["proj_size"] in (0,) or call[0]["proj_size"] >= 16)))
def test_fused_layer_norm_is_as_accurate_as_the_reference_in_float32(call):
    _check_layer_norm_accuracy(call)


@given(configs())
def test_fused_matches_reference_in_float64(call):
    _check_against_reference(call, torch.float64, 1e-10)


def _check_traces(call, dtype, tol):
    kw, form, T, B, with_state, _ = call
    fast, slow = _pair(kw, dtype)
    fast.eval()
    slow.eval()
    x = make_input(form, T, B, kw["input_size"], kw["batch_first"], dtype)
    hx = make_states("LSTM", fast, form, B, dtype) if with_state else None
    with torch.no_grad():
        a, b = fast.trace(x, hx), slow.trace(x, hx)
    for (_, _, ra), (_, _, rb) in zip(a, b, strict=True):
        for name in ra._fields:
            torch.testing.assert_close(getattr(ra, name), getattr(rb, name), atol=tol, rtol=tol)


@given(configs())
def test_fused_traces_equal_reference_traces_in_float64(call):
    _check_traces(call, torch.float64, 1e-10)


@given(configs(min_size=4).filter(lambda call: not call[0]["layer_norm"]))    # see the layer-norm note above
def test_fused_traces_equal_reference_traces_in_float32(call):
    _check_traces(call, torch.float32, 1e-5)


def test_plain_trace_can_run_fused_and_agrees_with_torch_replay():
    torch.manual_seed(0)
    lstm = lstmkit.LSTM(3, 5, num_layers=2, bidirectional=True)
    fused_lstm = lstmkit.LSTM(3, 5, num_layers=2, bidirectional=True, backend="fused")
    fused_lstm.load_state_dict(lstm.state_dict())
    x = torch.randn(7, 2, 3)
    with torch.no_grad():
        a, b = lstm.trace(x), fused_lstm.trace(x)
    for (_, _, ra), (_, _, rb) in zip(a, b, strict=True):
        for name in ra._fields:
            torch.testing.assert_close(getattr(ra, name), getattr(rb, name), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("option", [{}, dict(peephole=True, layer_norm=True, coupled=True, proj_size=2)])
def test_fused_gradcheck_float64(option):
    torch.manual_seed(0)
    lstm = lstmkit.LSTM(2, 3, num_layers=2, bidirectional=True, dtype=torch.float64, backend="fused",
                        zoneout=0.2, recurrent_dropout=0.2, **option)
    names = [n for n, _ in lstm.named_parameters()]
    x = torch.randn(4, 2, 2, dtype=torch.float64, requires_grad=True)

    def f(x, *ps):
        torch.manual_seed(3)
        return torch.func.functional_call(lstm, dict(zip(names, ps, strict=True)), (x,))[0]

    assert torch.autograd.gradcheck(f, (x, *lstm.parameters()), eps=1e-6, atol=1e-5)


def test_fused_is_deterministic():
    lstm = lstmkit.LSTM(8, 16, layer_norm=True, backend="fused")
    x = torch.randn(30, 5, 8, requires_grad=True)
    runs = []
    for _ in range(2):
        out = lstm(x)[0]
        grad, = torch.autograd.grad(out.square().sum(), x)
        runs.append((out.detach(), grad))
    assert torch.equal(runs[0][0], runs[1][0]) and torch.equal(runs[0][1], runs[1][1])


def test_fused_refuses_custom_cells_and_differentiable_traces():
    class Doubled(lstmkit.cells.GRUCellMath):                    # a subclass may change the math: not fused
        def step(self, xw, state, w):
            (h,), rec = super().step(xw, state, w)
            return (2 * h,), rec

    with pytest.raises(lstmkit.InputError, match="backend='fused' cannot run this module: .*not Doubled"):
        lstmkit.Recurrent(Doubled, 3, 4, backend="fused")
    lstm = lstmkit.LSTM(3, 4, backend="fused")
    with pytest.raises(lstmkit.InputError, match="records carry no gradient"):
        lstm.trace(torch.randn(2, 1, 3))


# Without grad and without a trace the engine streams: a_x and the gates exist for a chunk of steps at a time
# (ceil(1024 / B) steps; 26 at B = 40), so the memory of a call does not grow with T. T = 60 crosses two chunk
# boundaries and packed lengths end sequences inside each chunk.
@pytest.mark.parametrize("option", [{}, dict(peephole=True, coupled=True), dict(layer_norm=True, proj_size=2),
                                    dict(zoneout=0.3, recurrent_dropout=0.2, bidirectional=True, num_layers=2)])
@pytest.mark.parametrize("training", [False, True])
def test_streaming_inference_matches_reference_across_chunks(option, training):
    kw = dict(input_size=3, hidden_size=4, **option)
    fast, slow = _pair(kw, torch.float64)
    fast.train(training)
    slow.train(training)
    T, B = 60, 40
    lengths = torch.randint(1, T + 1, (B,))
    x = torch.nn.utils.rnn.pack_padded_sequence(torch.randn(T, B, 3, dtype=torch.float64), lengths,
                                                enforce_sorted=False)
    with torch.no_grad():
        torch.manual_seed(5)
        out_a, (h_a, c_a) = fast(x)
        torch.manual_seed(5)
        out_b, (h_b, c_b) = slow(x)
    for a, b in ((out_a.data, out_b.data), (h_a, h_b), (c_a, c_b)):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-10)


def test_streaming_returns_no_records_and_the_same_output():
    torch.manual_seed(0)
    T, B, I, H = 50, 32, 5, 6
    x, h0, c0 = torch.randn(T, B, I), torch.randn(B, H), torch.randn(B, H)
    w_ih, w_hh, b = torch.randn(4 * H, I), torch.randn(4 * H, H), torch.randn(4 * H)
    with torch.no_grad():
        y, h_n, c_n, gates, c_seq = fused.lstm_layer(x, h0, c0, w_ih, w_hh, b, b, records=False)
        y2, h_n2, c_n2, gates2, c_seq2 = fused.lstm_layer(x, h0, c0, w_ih, w_hh, b, b, records=True)
    assert gates.shape == (0, B, 4 * H) and c_seq.shape == (0, B, H)
    assert gates2.shape == (T, B, 4 * H) and c_seq2.shape == (T, B, H)
    assert torch.equal(y, y2) and torch.equal(h_n, h_n2) and torch.equal(c_n, c_n2)


def test_working_buffers_are_reused_and_can_be_released():
    lstm = lstmkit.LSTM(8, 64, layer_norm=True, backend="fused")
    x = torch.randn(100, 64, 8)                        # (T, B, 4H) buffers of 6.6 MB: big enough to be cached
    first = lstm(x)[0]
    first.sum().backward()
    assert fused.cached_bytes() > 0                  # the call's buffers went back to the cache, not to the OS
    again = lstm(x)[0]                                 # and a second call on reused memory computes the same
    assert torch.equal(first, again)
    fused.release_memory()
    assert fused.cached_bytes() == 0
