"""lstm.trace(x): the forward's results plus every gate and state, identical across engines."""

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

import lstmkit
from parity import make_input, make_states


def _layer_inputs(module, x):
    """Each layer's time-major input, rebuilt from the trace's h records (eval mode, batched time-major x)."""
    tr = module.trace(x)
    inputs = [x]
    for layer in range(module.num_layers - 1):
        hs = [tr[layer, d].h for d in range(tr.num_directions)]
        inputs.append(torch.cat(hs, dim=-1))
    return tr, inputs


@pytest.mark.parametrize("backend", ["torch", "reference"])
def test_trace_c_follows_forget_and_input_gates(backend):
    torch.manual_seed(0)
    lstm = lstmkit.LSTM(3, 5, num_layers=2, bidirectional=True, backend=backend)
    x = torch.randn(7, 2, 3)
    with torch.no_grad():
        tr = lstm.trace(x)
    for _, d, r in tr:
        c_prev = torch.zeros_like(r.c)
        if d == 0:
            c_prev[1:] = r.c[:-1]
        else:                                       # the reverse direction walks from the last step back
            c_prev[:-1] = r.c[1:]
        torch.testing.assert_close(r.c, r.f * c_prev + r.i * r.g)
        torch.testing.assert_close(r.h, r.o * torch.tanh(r.c))
        for gate in (r.i, r.f, r.o):
            assert gate.min() >= 0 and gate.max() <= 1


@pytest.mark.parametrize("backend", ["torch", "reference"])
def test_trace_gates_reproduce_preactivations_from_the_weights(backend):
    torch.manual_seed(1)
    lstm = lstmkit.LSTM(4, 6, num_layers=2, backend=backend)
    x = torch.randn(5, 3, 4)
    with torch.no_grad():
        tr, inputs = _layer_inputs(lstm, x)
        for layer in range(2):
            r = tr[layer, 0]
            h_prev = torch.cat([torch.zeros_like(r.h[:1]), r.h[:-1]])
            w = lambda n, layer=layer: getattr(lstm, f"{n}_l{layer}")  # noqa: E731
            a = F.linear(inputs[layer], w("weight_ih"), w("bias_ih")) + F.linear(h_prev, w("weight_hh"),
                                                                                   w("bias_hh"))
            a_i, a_f, a_g, a_o = a.chunk(4, -1)
            torch.testing.assert_close(r.i, torch.sigmoid(a_i))
            torch.testing.assert_close(r.f, torch.sigmoid(a_f))
            torch.testing.assert_close(r.g, torch.tanh(a_g))
            torch.testing.assert_close(r.o, torch.sigmoid(a_o))


@st.composite
def trace_calls(draw):
    kind = draw(st.sampled_from(["LSTM", "GRU", "RNN"]))
    kw = dict(input_size=draw(st.integers(1, 4)), hidden_size=draw(st.integers(2, 5)),
              num_layers=draw(st.integers(1, 2)), bias=draw(st.booleans()), batch_first=draw(st.booleans()),
              bidirectional=draw(st.booleans()))
    if kind == "LSTM":
        kw["proj_size"] = draw(st.integers(0, kw["hidden_size"] - 1))
    form = draw(st.sampled_from(["batched", "unbatched", "packed", "packed_unsorted"]))
    return kind, kw, form, draw(st.integers(1, 5)), draw(st.integers(1, 4)), draw(st.booleans())


@given(trace_calls())
def test_trace_is_forward_plus_records_and_engines_agree(call):
    kind, kw, form, T, B, with_state = call
    torch.manual_seed(0)
    fast = getattr(lstmkit, kind)(**kw, backend="torch")
    slow = getattr(lstmkit, kind)(**kw, backend="reference")
    slow.load_state_dict(fast.state_dict())
    x = make_input(form, T, B, kw["input_size"], kw["batch_first"], torch.float32)
    hx = make_states(kind, fast, form, B, torch.float32) if with_state else None
    with torch.no_grad():
        out, state = fast(x, hx)
        tr_fast, tr_slow = fast.trace(x, hx), slow.trace(x, hx)
    packed = form.startswith("packed")
    torch.testing.assert_close(tr_fast.output.data if packed else tr_fast.output, out.data if packed else out)
    for a, b in zip(state if isinstance(state, tuple) else (state,),
                    tr_fast.state if isinstance(tr_fast.state, tuple) else (tr_fast.state,), strict=True):
        torch.testing.assert_close(a, b)
    assert tr_fast.num_layers == kw["num_layers"] and tr_fast.num_directions == (2 if kw["bidirectional"] else 1)
    for (_, _, a), (_, _, b) in zip(tr_fast, tr_slow, strict=True):
        assert a._fields == b._fields
        for name in a._fields:
            torch.testing.assert_close(getattr(a, name), getattr(b, name), atol=1e-5, rtol=1e-5)
    # Layout: like the output of one direction.
    R = kw.get("proj_size") or kw["hidden_size"]
    rec = tr_fast[kw["num_layers"] - 1, 0]
    if form == "unbatched":
        assert rec.h.shape == (T, R)
    elif kw["batch_first"]:
        assert rec.h.shape[0] == B and rec.h.shape[-1] == R
    else:
        assert rec.h.shape[1] == B and rec.h.shape[-1] == R
    if packed:
        assert tr_fast.lengths is not None and tr_fast.lengths.shape == (B,)
        time_dim = 1 if kw["batch_first"] else 0
        for b, n in enumerate(tr_fast.lengths.tolist()):
            tail = rec.h.select(1 - time_dim, b).narrow(0, n, rec.h.shape[time_dim] - n)
            assert tail.abs().sum() == 0
    else:
        assert tr_fast.lengths is None


def test_trace_h_of_last_layer_is_the_output():
    lstm = lstmkit.LSTM(3, 4, num_layers=2, bidirectional=True, batch_first=True)
    x = torch.randn(2, 6, 3)
    tr = lstm.trace(x)
    torch.testing.assert_close(torch.cat([tr[1, 0].h, tr[1, 1].h], -1), tr.output)


def test_trace_is_differentiable_with_grad_enabled():
    lstm = lstmkit.LSTM(3, 4)
    tr = lstm.trace(torch.randn(5, 2, 3))
    tr[0, 0].f.mean().backward()
    assert lstm.weight_ih_l0.grad is not None and lstm.weight_ih_l0.grad.abs().sum() > 0


def test_trace_of_gru_and_rnn_names_their_gates():
    gru = lstmkit.GRU(3, 4)
    rnn = lstmkit.RNN(3, 4, nonlinearity="relu")
    x = torch.randn(5, 2, 3)
    assert gru.trace(x)[0, 0]._fields == ("r", "z", "n", "h")
    r = rnn.trace(x)[0]
    assert r._fields == ("a", "h")
    torch.testing.assert_close(r.h, torch.relu(r.a))


def test_trace_rejects_a_bad_index():
    tr = lstmkit.LSTM(3, 4).trace(torch.randn(5, 2, 3))
    with pytest.raises(IndexError, match="layer 3"):
        tr[3, 0]
    with pytest.raises(IndexError, match="direction 1"):
        tr[0, 1]
    with pytest.raises(TypeError):
        tr["f"]
