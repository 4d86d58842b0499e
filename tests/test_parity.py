"""lstmkit's LSTM, GRU and RNN against torch.nn's: same parameters, same results, same gradients."""

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import lstmkit
from parity import assert_same_call, make_input, make_states, twins

KINDS = ["LSTM", "GRU", "RNN"]


@st.composite
def calls(draw, kind):
    kw = dict(input_size=draw(st.integers(1, 5)), hidden_size=draw(st.integers(2, 6)),
              num_layers=draw(st.integers(1, 3)), bias=draw(st.booleans()), batch_first=draw(st.booleans()),
              bidirectional=draw(st.booleans()))
    if kind == "LSTM":
        kw["proj_size"] = draw(st.integers(0, kw["hidden_size"] - 1))
    if kind == "RNN":
        kw["nonlinearity"] = draw(st.sampled_from(["tanh", "relu"]))
    form = draw(st.sampled_from(["batched", "unbatched", "packed", "packed_unsorted"]))
    return kw, form, draw(st.integers(1, 6)), draw(st.integers(1, 4)), draw(st.booleans())


def _check(kind, dtype, backend, call):
    kw, form, T, B, with_state = call
    ours, theirs = twins(kind, dtype=dtype, backend=backend, **kw)
    x = make_input(form, T, B, kw["input_size"], kw["batch_first"], dtype)
    hx = make_states(kind, theirs, form, B, dtype) if with_state else None
    assert_same_call(ours, theirs, x, hx, dtype)


@pytest.mark.parametrize("backend", ["torch", "reference"])
@pytest.mark.parametrize("kind", KINDS)
def test_matches_torch_nn_in_float32(kind, backend):
    given(calls(kind))(lambda call: _check(kind, torch.float32, backend, call))()


@pytest.mark.parametrize("backend", ["torch", "reference"])
@pytest.mark.parametrize("kind", KINDS)
def test_matches_torch_nn_in_float64(kind, backend):
    given(calls(kind))(lambda call: _check(kind, torch.float64, backend, call))()


@pytest.mark.parametrize("kind", KINDS)
def test_same_seed_gives_torch_nn_initialisation(kind):
    ours, theirs = twins(kind, input_size=3, hidden_size=4, num_layers=2, bidirectional=True)
    assert list(ours.state_dict()) == list(theirs.state_dict())
    for name, p in theirs.state_dict().items():
        assert torch.equal(ours.state_dict()[name], p), name


@pytest.mark.parametrize("kind", KINDS)
def test_state_dict_loads_both_ways(kind):
    kw = dict(input_size=3, hidden_size=5, num_layers=2, bidirectional=True)
    if kind == "LSTM":
        kw["proj_size"] = 2
    ours = getattr(lstmkit, kind)(**kw)
    theirs = getattr(torch.nn, kind)(**kw)
    ours.load_state_dict(theirs.state_dict())
    x = torch.randn(4, 2, 3)
    torch.testing.assert_close(ours(x)[0], theirs(x)[0])
    theirs = getattr(torch.nn, kind)(**kw)
    theirs.load_state_dict(ours.state_dict())
    torch.testing.assert_close(ours(x)[0], theirs(x)[0])


def test_dropout_between_layers_matches_torch_kernel_under_the_same_seed():
    ours, theirs = twins("LSTM", input_size=3, hidden_size=8, num_layers=3, dropout=0.5)
    x = torch.randn(6, 4, 3)
    torch.manual_seed(7)
    a = ours(x)[0]
    torch.manual_seed(7)
    b = theirs(x)[0]
    torch.testing.assert_close(a, b)
    ours.eval()
    theirs.eval()
    torch.testing.assert_close(ours(x)[0], theirs(x)[0])


def test_reference_engine_applies_dropout_only_in_training():
    lstm = lstmkit.LSTM(3, 8, num_layers=2, dropout=0.5, backend="reference")
    x = torch.randn(6, 4, 3)
    train_a, train_b = lstm(x)[0], lstm(x)[0]
    assert not torch.equal(train_a, train_b)
    lstm.eval()
    assert torch.equal(lstm(x)[0], lstm(x)[0])


def test_gru_with_dropout_warns_like_torch_for_a_single_layer():
    with pytest.warns(UserWarning, match="dropout"):
        lstmkit.GRU(3, 4, dropout=0.2)


@pytest.mark.parametrize("kind", ["LSTMCell", "GRUCell", "RNNCell"])
@pytest.mark.parametrize("backend", ["torch", "reference"])
@pytest.mark.parametrize("batched", [True, False])
def test_cells_match_torch_nn(kind, backend, batched):
    for dtype in (torch.float32, torch.float64):
        for bias in (True, False):
            ours, theirs = twins(kind, dtype=dtype, backend=backend, input_size=3, hidden_size=4, bias=bias)
            x = torch.randn(5, 3, dtype=dtype) if batched else torch.randn(3, dtype=dtype)
            shape = (5, 4) if batched else (4,)
            hx = torch.randn(shape, dtype=dtype)
            if kind == "LSTMCell":
                hx = (hx, torch.randn(shape, dtype=dtype))
            assert_same_call(ours, theirs, x, hx, dtype)
            assert_same_call(ours, theirs, x, None, dtype)


def test_is_a_module_with_torch_nn_attributes():
    lstm = lstmkit.LSTM(3, 4, num_layers=2, proj_size=2)
    ref = torch.nn.LSTM(3, 4, num_layers=2, proj_size=2)
    for name in ("input_size", "hidden_size", "num_layers", "bias", "batch_first", "dropout", "bidirectional",
                 "proj_size", "mode"):
        assert getattr(lstm, name) == getattr(ref, name), name
    assert [[p.shape for p in w] for w in lstm.all_weights] == [[p.shape for p in w] for w in ref.all_weights]
    lstm.flatten_parameters()
    assert lstmkit.RNN(2, 3, nonlinearity="relu").mode == torch.nn.RNN(2, 3, nonlinearity="relu").mode
