"""lstmkit.Stream: chunks of any length, carried state, batched streams, reset of one stream."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import lstmkit

TOL = dict(atol=1e-5, rtol=1e-5)


@st.composite
def streamed(draw):
    kind = draw(st.sampled_from(["LSTM", "GRU", "RNN"]))
    kw = dict(input_size=3, hidden_size=4, num_layers=draw(st.integers(1, 2)), batch_first=draw(st.booleans()),
              bias=draw(st.booleans()))
    if kind == "LSTM":
        kw.update(peephole=draw(st.booleans()), coupled=draw(st.booleans()), layer_norm=draw(st.booleans()),
                  proj_size=draw(st.sampled_from([0, 2])))
    if kind == "RNN":
        kw["nonlinearity"] = draw(st.sampled_from(["tanh", "relu"]))
    kw["zoneout"] = draw(st.sampled_from([0.0, 0.2]))
    kw["recurrent_dropout"] = draw(st.sampled_from([0.0, 0.2]))       # eval mode: identity
    chunks = draw(st.lists(st.integers(1, 7), min_size=1, max_size=5))
    return kind, kw, chunks, draw(st.integers(1, 3)), draw(st.booleans())


@given(streamed())
def test_chunks_of_any_length_equal_one_call_on_the_whole_input(case):
    kind, kw, chunks, B, with_state = case
    torch.manual_seed(0)
    module = getattr(lstmkit, kind)(**kw).eval()
    T = sum(chunks)
    x = torch.randn((B, T, 3) if module.batch_first else (T, B, 3))
    hx = None
    if with_state:
        sizes = module.cell.state_sizes()
        hx = tuple(torch.randn(module.num_layers, B, s) for s in sizes)
        hx = hx if len(hx) > 1 else hx[0]
    time_dim = 1 if module.batch_first else 0
    with torch.no_grad():
        expected, state = module(x, hx)
        stream = lstmkit.Stream(module, batch=B, hx=hx)
        got = torch.cat([stream(c) for c in torch.split(x, chunks, dim=time_dim)], dim=time_dim)
    torch.testing.assert_close(got, expected, **TOL)
    for s, e in zip(stream.state if isinstance(state, tuple) else (stream.state,),
                    state if isinstance(state, tuple) else (state,), strict=True):
        torch.testing.assert_close(s, e, **TOL)


def test_resetting_one_stream_restarts_it_and_leaves_the_others():
    torch.manual_seed(0)
    lstm = lstmkit.LSTM(3, 4).eval()
    a, b = torch.randn(5, 1, 3), torch.randn(6, 1, 3)
    with torch.no_grad():
        stream = lstmkit.Stream(lstm, batch=2)
        stream(torch.cat([a[:3], b[:3]], dim=1))
        stream.reset(0)                                  # stream 0 starts a new sequence: a[3:]
        y = stream(torch.cat([a[3:], b[3:5]], dim=1))
        fresh, _ = lstm(a[3:])
        whole_b, _ = lstm(b[:5])
    torch.testing.assert_close(y[:, 0], fresh[:, 0], **TOL)
    torch.testing.assert_close(y[:, 1], whole_b[3:, 0], **TOL)


def test_reset_returns_to_the_given_initial_state():
    lstm = lstmkit.GRU(3, 4).eval()
    h0 = torch.randn(1, 2, 4)
    stream = lstmkit.Stream(lstm, batch=2, hx=h0)
    with torch.no_grad():
        stream(torch.randn(3, 2, 3))
    stream.reset()
    torch.testing.assert_close(stream.state, h0)


def test_gradients_flow_through_a_stream():
    lstm = lstmkit.LSTM(3, 4)
    stream = lstmkit.Stream(lstm)
    y = torch.cat([stream(torch.randn(1, 1, 3)) for _ in range(3)])
    y.sum().backward()
    assert lstm.weight_hh_l0.grad is not None and lstm.weight_hh_l0.grad.abs().sum() > 0


def test_a_bidirectional_module_cannot_stream():
    with pytest.raises(ValueError, match="bidirectional"):
        lstmkit.Stream(lstmkit.LSTM(3, 4, bidirectional=True))


@pytest.mark.parametrize("chunk, match", [(torch.randn(2, 3, 3), "B = 2 streams"), (torch.randn(2, 3), "3-D"),
                                          (torch.randn(1, 2, 5), "3 features")])
def test_a_malformed_chunk_is_named(chunk, match):
    stream = lstmkit.Stream(lstmkit.LSTM(3, 4).eval(), batch=2)
    with pytest.raises(ValueError, match=match):
        stream(chunk)


def test_recurrent_dropout_in_training_mode_cannot_stream():
    stream = lstmkit.Stream(lstmkit.LSTM(3, 4, recurrent_dropout=0.3))
    with pytest.raises(ValueError, match="recurrent_dropout"):
        stream(torch.randn(1, 1, 3))


@pytest.mark.parametrize("index", [2, -3, "0", True])
def test_a_bad_reset_index_is_named(index):
    stream = lstmkit.Stream(lstmkit.RNN(3, 4), batch=2)
    with pytest.raises((ValueError, TypeError), match="index"):
        stream.reset(index)
