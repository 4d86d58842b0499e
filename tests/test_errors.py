"""Every malformed construction or call raises a ValueError/TypeError (also a RuntimeError, as torch.nn callers
expect) that names the argument, what was expected and what came, before any computation."""

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence

import lstmkit
from lstmkit import InputError, InputTypeError


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    (dict(input_size=0, hidden_size=4), InputError, r"`input_size` must be a positive int, got 0"),
    (dict(input_size=3, hidden_size=-2), InputError, r"`hidden_size` must be a positive int, got -2"),
    (dict(input_size=3.0, hidden_size=4), InputTypeError, r"`input_size` must be an int, got float"),
    (dict(input_size=3, hidden_size=4, num_layers=0), InputError, r"`num_layers`"),
    (dict(input_size=3, hidden_size=4, num_layers=True), InputTypeError, r"`num_layers` must be an int, got bool"),
    (dict(input_size=3, hidden_size=4, dropout=1.5), InputError, r"`dropout` must be a probability in \[0, 1\]"),
    (dict(input_size=3, hidden_size=4, dropout=-0.1), InputError, r"`dropout`"),
    (dict(input_size=3, hidden_size=4, dropout="0.1"), InputTypeError, r"`dropout` must be a float, got str"),
    (dict(input_size=3, hidden_size=4, proj_size=-1), InputError, r"`proj_size` must be 0 .* got -1"),
    (dict(input_size=3, hidden_size=4, proj_size=4), InputError, r"smaller than hidden_size=4, got 4"),
    (dict(input_size=3, hidden_size=4, backend="cuda"), InputError, r"`backend` must be one of .* got 'cuda'"),
    (dict(input_size=3, hidden_size=4, bias="yes"), InputTypeError, r"`bias` must be True or False"),
    (dict(input_size=3, hidden_size=4, bidirectional=1), InputTypeError, r"`bidirectional`"),
    (dict(input_size=3, hidden_size=4, batch_first=None), InputTypeError, r"`batch_first`"),
])
def test_bad_construction_is_named(kwargs, error, match):
    with pytest.raises(error, match=match):
        lstmkit.LSTM(**kwargs)


def test_errors_are_also_runtime_errors_like_torch_nn_raises():
    assert issubclass(InputError, ValueError) and issubclass(InputError, RuntimeError)
    assert issubclass(InputTypeError, TypeError) and issubclass(InputTypeError, RuntimeError)


def test_unknown_nonlinearity_is_named():
    with pytest.raises(InputError, match=r"`nonlinearity` must be 'tanh' or 'relu', got 'sigmoid'"):
        lstmkit.RNN(3, 4, nonlinearity="sigmoid")


def test_projection_is_lstm_only():
    with pytest.raises(InputError, match="proj_size"):
        lstmkit.Recurrent(lstmkit.cells.GRUCellMath, 3, 4, proj_size=2)


LSTM = lstmkit.LSTM(3, 4, num_layers=2, proj_size=2)
GRU = lstmkit.GRU(3, 4)


@pytest.mark.parametrize(("module", "args", "error", "match"), [
    (LSTM, (torch.randn(2, 3, 4, 3),), InputError, r"`input` must be 3-D \(batched\) or 2-D .* got 4-D"),
    (LSTM, (torch.randn(5),), InputError, r"got 1-D"),
    (LSTM, (torch.randn(5, 2, 7),), InputError, r"`input` has 7 features .* input_size=3"),
    (LSTM, (torch.randn(0, 2, 3),), InputError, r"`input` has no steps"),
    (LSTM, (torch.ones(5, 2, 3, dtype=torch.long),), InputTypeError, r"floating-point tensor, got dtype torch.int64"),
    (LSTM, ([[1.0, 2.0, 3.0]],), InputTypeError, r"`input` must be a Tensor or PackedSequence, got list"),
    (LSTM, (torch.randn(5, 2, 3, dtype=torch.float64),), InputError, r"dtype torch.float64 .* torch.float32"),
    # states: layer count, batch, size (h has proj_size, c has hidden_size)
    (LSTM, (torch.randn(5, 2, 3), (torch.zeros(1, 2, 2), torch.zeros(2, 2, 4))), InputError,
     r"`hx\[0\] \(h0\)` must have shape \(2, 2, 2\) \(num_layers \* num_directions = 2, batch = 2, proj_size = 2\)"),
    (LSTM, (torch.randn(5, 2, 3), (torch.zeros(2, 3, 2), torch.zeros(2, 2, 4))), InputError, r"batch = 2"),
    (LSTM, (torch.randn(5, 2, 3), (torch.zeros(2, 2, 2), torch.zeros(2, 2, 2))), InputError,
     r"`hx\[1\] \(c0\)` must have shape \(2, 2, 4\) .*hidden_size = 4"),
    (LSTM, (torch.randn(5, 2, 3), torch.zeros(2, 2, 2)), InputTypeError, r"`hx` must be a tuple \(h0, c0\)"),
    (LSTM, (torch.randn(5, 2, 3), (torch.zeros(2, 2, 2),)), InputTypeError, r"of 2 tensors, got tuple of length 1"),
    (GRU, (torch.randn(5, 2, 3), (torch.zeros(1, 2, 4), torch.zeros(1, 2, 4))), InputTypeError,
     r"`hx` must be a Tensor h0 for GRU, got tuple \(a tuple is what an LSTM takes\)"),
    # batched input with unbatched state and the reverse
    (GRU, (torch.randn(5, 2, 3), torch.zeros(1, 4)), InputError, r"`h0` must be 3-D for batched 3-D input, got 2-D"),
    (GRU, (torch.randn(5, 3), torch.zeros(1, 1, 4)), InputError, r"`h0` must be 2-D for unbatched 2-D input"),
    (GRU, (torch.randn(5, 2, 3), torch.zeros(1, 2, 4, dtype=torch.float64)), InputError, r"`h0` has dtype"),
    (GRU, (torch.randn(5, 2, 3), torch.zeros(1, 2, 4, dtype=torch.int32)), InputTypeError, r"`h0` must be a floating"),
])
def test_bad_call_is_named(module, args, error, match):
    with pytest.raises(error, match=match):
        module(*args)
    with pytest.raises(error, match=match):
        module.trace(*args)


def test_bad_packed_state_batch_is_named():
    x = pack_padded_sequence(torch.randn(5, 3, 3), torch.tensor([5, 3, 2]))
    with pytest.raises(InputError, match=r"batch = 3"):
        GRU(x, torch.zeros(1, 2, 4))


def test_device_mismatch_is_named_before_any_work():
    lstm = lstmkit.LSTM(3, 4, device="meta")
    with pytest.raises(InputError, match=r"`input` is on cpu but the module's parameters are on meta"):
        lstm(torch.randn(5, 2, 3))
    cpu = lstmkit.LSTM(3, 4)
    with pytest.raises(InputError, match=r"`hx\[0\] \(h0\)` is on meta"):
        cpu(torch.randn(5, 2, 3), (torch.zeros(1, 2, 4, device="meta"), torch.zeros(1, 2, 4)))


@pytest.mark.parametrize(("cell", "args", "error", "match"), [
    (lstmkit.LSTMCell(3, 4), (torch.randn(2, 3), torch.zeros(2, 4)), InputTypeError,
     r"`hx` must be a tuple \(h, c\) for LSTMCell, got a single Tensor"),
    (lstmkit.GRUCell(3, 4), (torch.randn(2, 3), (torch.zeros(2, 4), torch.zeros(2, 4))), InputTypeError,
     r"`hx` must be a Tensor h for GRUCell, got tuple"),
    (lstmkit.RNNCell(3, 4), (torch.randn(2, 3), torch.zeros(3, 4)), InputError, r"`h` must have shape \(2, 4\)"),
    (lstmkit.RNNCell(3, 4), (torch.randn(2, 2, 3),), InputError, r"2-D \(batched\) or 1-D \(unbatched\), got 3-D"),
    (lstmkit.LSTMCell(3, 4), (torch.randn(3), (torch.zeros(1, 4), torch.zeros(1, 4))), InputError,
     r"must be 1-D for unbatched"),
    (lstmkit.LSTMCell(3, 4), (torch.randn(2, 5),), InputError, r"`input` has 5 features"),
])
def test_bad_cell_call_is_named(cell, args, error, match):
    with pytest.raises(error, match=match):
        cell(*args)


def test_torch_backend_refuses_what_it_cannot_run():
    with pytest.raises(InputError, match="backend='torch' cannot run this module: .*no fused kernel"):
        lstmkit.LSTM(3, 4, peephole=True, backend="torch")
    with pytest.raises(InputError, match="no recurrent dropout or zoneout"):
        lstmkit.GRU(3, 4, zoneout=0.1, backend="torch")
    with pytest.raises(InputError, match="backend='torch' cannot run this cell"):
        lstmkit.LSTMCell(3, 4, layer_norm=True, backend="torch")
