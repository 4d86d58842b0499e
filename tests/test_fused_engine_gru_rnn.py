"""GRU and RNN with backend="fused" against the reference engine over the configuration space, through the modules,
and the engine ``auto`` picks for them."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import lstmkit
from lstmkit.engines import fused
from lstmkit.engines.fused import cpu
from parity import assert_close_or_unused, make_input, make_states, run_and_grads

pytestmark = pytest.mark.skipif(not fused.is_available(), reason=f"no compiled engine: {fused.unavailable_reason()}")

KINDS = [("GRU", {}), ("RNN", {"nonlinearity": "tanh"}), ("RNN", {"nonlinearity": "relu"})]


@st.composite
def configs(draw):
    kind, extra = draw(st.sampled_from(KINDS))
    layers = draw(st.integers(1, 2))
    kw = dict(input_size=draw(st.integers(1, 6)), hidden_size=draw(st.integers(1, 6)), num_layers=layers,
              bias=draw(st.booleans()), batch_first=draw(st.booleans()), bidirectional=draw(st.booleans()),
              recurrent_dropout=draw(st.sampled_from([0.0, 0.3])), zoneout=draw(st.sampled_from([0.0, 0.2])),
              dropout=draw(st.sampled_from([0.0, 0.4])) if layers == 2 else 0.0, **extra)  # (between layers)
    form = draw(st.sampled_from(["batched", "unbatched", "packed", "packed_unsorted"]))
    return kind, kw, form, draw(st.integers(1, 6)), draw(st.integers(1, 4)), draw(st.booleans()), draw(st.booleans())


def _pair(kind, kw, dtype):
    torch.manual_seed(0)
    fast = getattr(lstmkit, kind)(**kw, backend="fused", dtype=dtype)
    slow = getattr(lstmkit, kind)(**kw, backend="reference", dtype=dtype)
    slow.load_state_dict(fast.state_dict())
    return fast, slow


def _check_against_reference(call, dtype, tol):
    kind, kw, form, T, B, with_state, training = call
    fast, slow = _pair(kind, kw, dtype)
    fast.train(training)
    slow.train(training)
    x = make_input(form, T, B, kw["input_size"], kw["batch_first"], dtype)
    hx = make_states(kind, fast, form, B, dtype) if with_state else None
    torch.manual_seed(9)                     # the same masks for both engines
    out_a, grads_a = run_and_grads(fast, x, hx)
    torch.manual_seed(9)
    out_b, grads_b = run_and_grads(slow, x, hx)
    assert_close_or_unused(out_a + list(grads_a), out_b + list(grads_b), tol)


@given(configs())
def test_fused_gru_and_rnn_match_reference_in_float32(call):
    _check_against_reference(call, torch.float32, 1e-5)


@given(configs())
def test_fused_gru_and_rnn_match_reference_in_float64(call):
    _check_against_reference(call, torch.float64, 1e-10)


@given(configs())
def test_fused_gru_and_rnn_traces_equal_reference_traces(call):
    kind, kw, form, T, B, with_state, _ = call
    fast, slow = _pair(kind, kw, torch.float64)
    fast.eval()
    slow.eval()
    x = make_input(form, T, B, kw["input_size"], kw["batch_first"], torch.float64)
    hx = make_states(kind, fast, form, B, torch.float64) if with_state else None
    with torch.no_grad():
        a, b = fast.trace(x, hx), slow.trace(x, hx)
    torch.testing.assert_close(a.output.data if hasattr(a.output, "batch_sizes") else a.output,
                               b.output.data if hasattr(b.output, "batch_sizes") else b.output)
    for (_, _, ra), (_, _, rb) in zip(a, b, strict=True):
        assert ra._fields == rb._fields
        for name in ra._fields:
            torch.testing.assert_close(getattr(ra, name), getattr(rb, name), atol=1e-10, rtol=1e-10)


@pytest.mark.parametrize(("kind", "extra"), KINDS)
def test_auto_traces_gru_and_rnn_on_the_fused_engine_like_torch_replay(kind, extra):
    torch.manual_seed(0)
    module = getattr(lstmkit, kind)(3, 5, num_layers=2, bidirectional=True, **extra)
    replay = getattr(lstmkit, kind)(3, 5, num_layers=2, bidirectional=True, backend="torch", **extra)
    replay.load_state_dict(module.state_dict())
    x = torch.randn(7, 2, 3)
    with torch.no_grad():
        assert module.engine_for(x, trace=True) == "fused"
        assert module.engine_for(x) == "torch"                   # 7 steps: too short for the fused engine to pay
        long = torch.randn(40, 2, 3)
        assert module.engine_for(long) == "fused"   # torch's CPU GRU is slower, and its RNN at small per-step sizes
    with torch.enable_grad():                                # differentiable records: torch's kernel + replay
        assert module.engine_for(x, trace=True) == "torch"
        a, b = module.trace(x), replay.trace(x)
    for (_, _, ra), (_, _, rb) in zip(a, b, strict=True):
        for name in ra._fields:
            torch.testing.assert_close(getattr(ra, name), getattr(rb, name), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize(("kind", "extra"), KINDS)
def test_auto_runs_recurrent_dropout_and_zoneout_fused(kind, extra):
    module = getattr(lstmkit, kind)(3, 5, recurrent_dropout=0.2, zoneout=0.1, **extra)
    x = torch.randn(4, 2, 3)
    assert module.engine_for(x) == "fused"
    with torch.enable_grad():
        assert module.engine_for(x, trace=True) == "reference"     # differentiable records need autograd's loop


@pytest.mark.parametrize("kind", ["GRU", "LSTM", "RNN"])
@pytest.mark.parametrize("square", [True, False])
def test_double_backward_through_the_fused_engine_names_the_backends_that_can(kind, square):
    x = torch.randn(40, 64, 3, requires_grad=True)      # 64 rows, 40 steps: auto takes the fused engine for all three
    for backend, works in (("auto", False), ("torch", True)):
        module = getattr(lstmkit, kind)(3, 4, backend=backend)
        assert module.engine_for(x) == ("fused" if backend == "auto" else "torch")
        y = module(x)[0]
        (g,) = torch.autograd.grad((y.square() if square else y).sum(), x, create_graph=True)
        if works:
            g.square().sum().backward()
        else:
            with pytest.raises(RuntimeError, match="cannot differentiate it again.*backend='torch'"):
                g.square().sum().backward()


@pytest.mark.parametrize(("kind", "kw"), [("GRU", {}), ("RNN", {"zoneout": 0.1}), ("LSTM", {"peephole": True})])
def test_output_modified_in_place_still_backpropagates(kind, kw):
    module = getattr(lstmkit, kind)(3, 4, **kw)
    x = torch.randn(5, 2, 3, requires_grad=True)
    out, _ = module(x)
    assert module.engine_for(x) == "fused"
    out.mul_(2)                                            # torch.nn allows this; the engine must not save `out`
    out.sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
def test_under_autocast_outputs_and_records_have_torch_nn_dtypes(kind):
    error = cpu.torch_kernel_runs_bf16({"LSTM": "lstm", "GRU": "gru", "RNN": "rnn_tanh"}[kind])
    if error:
        pytest.skip(f"torch.nn.{kind} cannot run under bf16 autocast on this CPU: {error}")
    torch.manual_seed(0)
    ours = getattr(lstmkit, kind)(3, 4)
    theirs = getattr(torch.nn, kind)(3, 4)
    theirs.load_state_dict(ours.state_dict())
    x = torch.randn(5, 2, 3)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        want = theirs(x)[0]
        got = ours(x)[0]
        trace = ours.trace(x)
    assert got.dtype == want.dtype                         # bf16 for LSTM and RNN, float32 for GRU
    assert {r.dtype for _, _, rec in trace for r in rec} == {want.dtype}
    torch.testing.assert_close(got.float(), want.float(), atol=2e-2, rtol=2e-2)
