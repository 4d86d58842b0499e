"""Interventions on the fused engine: the same results as the reference engine (forward, trace, gradients) over
the option space, gradcheck in float64, and the engine choice."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import lstmkit
from lstmkit import ablate, add, clamp, patch, scale
from lstmkit.engines import fused
from parity import assert_close_or_unused, make_input, make_states, run_and_grads

pytestmark = pytest.mark.skipif(not fused.is_available(), reason=f"no compiled engine: {fused.unavailable_reason()}")

F64 = torch.float64


@st.composite
def lstm_configs(draw):
    H = draw(st.integers(2, 5))
    return "LSTM", dict(input_size=draw(st.integers(1, 4)), hidden_size=H, num_layers=draw(st.integers(1, 2)),
                        bias=draw(st.booleans()), batch_first=draw(st.booleans()),
                        bidirectional=draw(st.booleans()), proj_size=draw(st.integers(0, H - 1)),
                        peephole=draw(st.booleans()), layer_norm=draw(st.booleans()), coupled=draw(st.booleans()),
                        recurrent_dropout=draw(st.sampled_from([0.0, 0.3])),
                        zoneout=draw(st.sampled_from([0.0, 0.2])))


@st.composite
def gru_rnn_configs(draw):
    kind = draw(st.sampled_from(["GRU", "RNN"]))
    kw = dict(input_size=draw(st.integers(1, 4)), hidden_size=draw(st.integers(2, 5)),
              num_layers=draw(st.integers(1, 2)), bias=draw(st.booleans()), batch_first=draw(st.booleans()),
              bidirectional=draw(st.booleans()), recurrent_dropout=draw(st.sampled_from([0.0, 0.3])),
              zoneout=draw(st.sampled_from([0.0, 0.2])))
    if kind == "RNN":
        kw["nonlinearity"] = draw(st.sampled_from(["tanh", "relu"]))
    return kind, kw


def subset(draw, n):
    """None, an int, a slice or a list over range(n)."""
    return draw(st.one_of(st.none(), st.integers(0, n - 1), st.builds(slice, st.integers(0, n - 1), st.none()),
                          st.lists(st.integers(0, n - 1), min_size=1, max_size=n, unique=True)))


@st.composite
def calls(draw, configs):
    kind, kw = draw(configs)
    form = draw(st.sampled_from(["batched", "unbatched", "packed", "packed_unsorted"]))
    T, B = draw(st.integers(1, 6)), draw(st.integers(1, 3))
    records = {"LSTM": "ifgoch", "GRU": "rznh", "RNN": "ah"}[kind]
    ivs = []
    for _ in range(draw(st.integers(1, 3))):
        name = draw(st.sampled_from(records))
        S = kw.get("proj_size") or kw["hidden_size"] if name == "h" else kw["hidden_size"]
        where = dict(layer=draw(st.integers(0, kw["num_layers"] - 1)),
                     direction=draw(st.integers(0, 1 if kw["bidirectional"] else 0)),
                     units=subset(draw, S), steps=subset(draw, T),
                     rows=None if form == "unbatched" else subset(draw, B))
        how = draw(st.sampled_from(["clamp", "scale", "add", "ablate", "mean", "patch"]))
        number = draw(st.floats(-1.5, 1.5))
        ivs.append((how, name, number, where))
    return kind, kw, form, T, B, draw(st.booleans()), draw(st.booleans()), ivs


def _make(ivs, source):
    """The drawn interventions, with `source` (a trace of the same model on another input) for mean and patch."""
    make = {"clamp": clamp, "scale": scale, "add": add}
    out = []
    for how, name, number, where in ivs:
        if how in make:
            out.append(make[how](name, number, **where))
        elif how == "ablate":
            out.append(ablate(name, **where))
        elif how == "mean":
            out.append(ablate(name, mean=source, **where))
        else:
            out.append(patch(name, source, **where))
    return out


def _pair(kind, kw):
    torch.manual_seed(0)
    fast = getattr(lstmkit, kind)(**kw, backend="fused", dtype=F64)
    slow = getattr(lstmkit, kind)(**kw, backend="reference", dtype=F64)
    slow.load_state_dict(fast.state_dict())
    return fast, slow


def _check(call):
    kind, kw, form, T, B, with_state, training, drawn = call
    fast, slow = _pair(kind, kw)
    x = make_input(form, T, B, kw["input_size"], kw["batch_first"], F64)
    hx = make_states(kind, fast, form, B, F64) if with_state else None
    with torch.no_grad():
        source = slow.eval().trace(make_input(form, T, B, kw["input_size"], kw["batch_first"], F64, seed=7))
    ivs = _make(drawn, source)
    runs = []
    for module in (fast, slow):
        module.train(training)
        torch.manual_seed(9)                 # the same masks for both engines
        with module.intervene(*ivs):
            out, grads = run_and_grads(module, x, hx)
            with torch.no_grad():
                torch.manual_seed(9)
                tr = module.trace(x, hx)
        runs.append(out + list(grads) + [r for _, _, rec in tr for r in rec])
    assert_close_or_unused(runs[0], runs[1], 1e-10)


@given(calls(lstm_configs()))
def test_fused_lstm_interventions_match_the_reference(call):
    _check(call)


@given(calls(gru_rnn_configs()))
def test_fused_gru_rnn_interventions_match_the_reference(call):
    _check(call)


@pytest.mark.parametrize("kind, kw", [
    ("LSTM", dict(peephole=True, proj_size=2)), ("LSTM", dict(layer_norm=True, coupled=True)),
    ("LSTM", dict(zoneout=0.3)), ("GRU", {}), ("RNN", {}), ("GRU", dict(zoneout=0.3))])
def test_fused_gradcheck_float64_with_interventions(kind, kw):
    torch.manual_seed(0)
    module = getattr(lstmkit, kind)(2, 3, bidirectional=True, dtype=F64, backend="fused", **kw).eval()
    names = module.cell.records
    x = torch.randn(4, 2, 2, dtype=F64, requires_grad=True)
    ivs = [scale(names[0], 1.5, units=[0, 2]), clamp(names[1], 0.3, steps=1, direction=1),
           add(names[-1], 0.2, rows=[1]), ablate(names[-2], steps=3), scale(names[-1], -0.5, steps=[0, 2])]
    ps = list(module.parameters())

    def f(x, *ps):
        named = dict(zip([n for n, _ in module.named_parameters()], ps, strict=True))
        return torch.func.functional_call(module, named, (x,), {"interventions": ivs})[0]

    assert module.engine_for(x, interventions=ivs) == "fused"
    assert torch.autograd.gradcheck(f, (x, *ps), eps=1e-6, atol=1e-5)


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
def test_an_identity_edit_changes_nothing(kind):
    torch.manual_seed(0)
    module = getattr(lstmkit, kind)(3, 6, num_layers=2, bidirectional=True, backend="fused")
    x = torch.randn(9, 4, 3, requires_grad=True)
    ivs = [scale(name, 1.0) for name in module.cell.records] + [add(module.cell.records[0], 0.0, layer=1)]
    runs = []
    for kw in ({}, {"interventions": ivs}):
        y, _ = module(x, **kw)
        runs.append([y, *torch.autograd.grad(y.square().sum(), [x, *module.parameters()])])
    # (to rounding: the compiler may contract the edited pass's multiply-adds into FMAs differently)
    for a, b in zip(*runs, strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-6)


def test_auto_takes_the_fused_engine_where_it_serves():
    lstm = lstmkit.LSTM(3, 4)                                 # plain: auto runs torch's kernel without interventions
    x = torch.randn(20, 2, 3)
    assert lstm.engine_for(x) == "torch"
    assert lstm.engine_for(x, interventions=[clamp("f", 1.0)]) == "fused"
    with torch.no_grad():
        assert lstm.engine_for(x, trace=True, interventions=[clamp("f", 1.0)]) == "fused"
    # a differentiable trace is the reference engine's, with or without interventions
    assert lstm.engine_for(x, trace=True, interventions=[clamp("f", 1.0)]) == "reference"


def test_fused_layer_functions_check_their_edits():
    from lstmkit.engines.fused.lstm import lstm_layer

    T, B, I, H = 3, 2, 2, 4
    args = (torch.randn(T, B, I), torch.zeros(B, H), torch.zeros(B, H), torch.randn(4 * H, I), torch.randn(4 * H, H),
            None, None)
    with pytest.raises(ValueError, match=r"`edits\['f'\] keep` must have shape \(3, 2, 4\)"):
        lstm_layer(*args, edits={"f": (torch.ones(3, 2, 5), torch.zeros(3, 2, 5))})
    with pytest.raises(ValueError, match=r"records this cell does not have: \['r'\]"):
        lstm_layer(*args, edits={"r": (torch.ones(3, 2, 4), torch.zeros(3, 2, 4))})


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_streaming_inference_applies_edits_in_every_chunk(kind):
    # Inference without a trace streams a_x a chunk of steps at a time (~1024 rows): T=300, B=4 is two chunks.
    fast, slow = _pair(kind, dict(input_size=3, hidden_size=4))
    x = torch.randn(300, 4, 3, dtype=F64)
    ivs = [clamp("h", 0.25, units=[1], steps=slice(250, 290)), scale(fast.cell.records[1], 0.5, rows=[2])]
    with torch.no_grad():
        got, want = fast(x, interventions=ivs), slow(x, interventions=ivs)
    torch.testing.assert_close(got, want, atol=1e-10, rtol=1e-10)
    assert (got[0][250:290, :, 1] == 0.25).all()


def test_bf16_autocast_runs_interventions_on_the_fused_engine():
    torch.manual_seed(0)
    lstm = lstmkit.LSTM(8, 16, backend="fused", peephole=True)
    x = torch.randn(12, 3, 8)
    ivs = [clamp("c", 0.5, units=[0, 1], steps=slice(4, None)), scale("o", 0.5)]
    exact, _ = lstm(x, interventions=ivs)
    with torch.autocast("cpu", dtype=torch.bfloat16), torch.no_grad():
        tr = lstm.trace(x, interventions=ivs)
    assert (tr[0, 0].c[4:, :, :2] == 0.5).all()
    torch.testing.assert_close(tr.output.float(), exact, atol=3e-2, rtol=3e-2)
