"""Inputs that must end in a clear error or in torch.nn's answer, never in a crash or a silent wrong result."""

import pytest
import torch
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence

import lstmkit
from lstmkit.engines import fused

ENGINES = ["auto", "reference"] + (["fused"] if fused.is_available() else [])
KINDS = ["LSTM", "GRU", "RNN"]


@pytest.mark.parametrize("backend", ENGINES)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(("batch_sizes", "match"), [
    ([2, 0, 2], "must be positive"),
    ([1, 2, 1], "non-increasing"),
    ([2, 2, 1], "sums to 5 but `input.data` has 4 rows"),
    ([], "is empty"),
])
def test_a_hand_built_packed_sequence_with_bad_batch_sizes_raises_before_any_work(kind, backend, batch_sizes,
                                                                                     match):
    module = getattr(lstmkit, kind)(4, 6, backend=backend)
    bad = PackedSequence(torch.randn(4, 4), torch.tensor(batch_sizes, dtype=torch.int64))
    with pytest.raises(lstmkit.InputError, match=match):
        module(bad)


def test_packed_batch_sizes_must_be_int64_on_the_cpu():
    with pytest.raises(lstmkit.InputError, match=r"`input.batch_sizes` must be a 1-D int64 tensor on the CPU"):
        lstmkit.GRU(4, 6)(PackedSequence(torch.randn(4, 4), torch.tensor([2, 2], dtype=torch.int32)))


def test_packed_sort_order_must_be_a_permutation_and_its_inverse():
    good = pack_padded_sequence(torch.randn(3, 2, 4), torch.tensor([2, 3]), enforce_sorted=False)
    bad = PackedSequence(good.data, good.batch_sizes, good.sorted_indices, good.sorted_indices.clone() * 0)
    with pytest.raises(lstmkit.InputError, match="permutation .* its inverse"):
        lstmkit.LSTM(4, 6)(bad)


@pytest.mark.parametrize("backend", ENGINES)
@pytest.mark.parametrize("kind", KINDS)
def test_an_empty_batch_gives_empty_outputs_like_torch_nn(kind, backend):
    ours = getattr(lstmkit, kind)(3, 4, num_layers=2, bidirectional=True, backend=backend)
    theirs = getattr(torch.nn, kind)(3, 4, num_layers=2, bidirectional=True)
    x = torch.randn(5, 0, 3, requires_grad=True)
    out, state = ours(x)
    want, want_state = theirs(x)
    assert out.shape == want.shape
    states = state if isinstance(state, tuple) else (state,)
    want_states = want_state if isinstance(want_state, tuple) else (want_state,)
    assert [s.shape for s in states] == [s.shape for s in want_states]
    out.sum().backward()
    assert x.grad.shape == x.shape


def test_an_empty_batch_through_a_cell_gives_an_empty_state():
    h, c = lstmkit.LSTMCell(3, 4)(torch.randn(0, 3))
    assert h.shape == c.shape == (0, 4)


@pytest.mark.parametrize("backend", ENGINES)
def test_a_parameter_of_another_dtype_raises_on_every_engine(backend):
    lstm = lstmkit.LSTM(3, 4, peephole=backend == "fused", backend=backend)
    lstm.weight_hh_l0.data = lstm.weight_hh_l0.data.double()
    with pytest.raises(lstmkit.InputError, match="parameter `weight_hh_l0` is torch.float64"):
        lstm(torch.randn(2, 1, 3))


def test_a_cell_parameter_of_another_dtype_raises():
    cell = lstmkit.GRUCell(3, 4)
    cell.bias_hh.data = cell.bias_hh.data.double()
    with pytest.raises(lstmkit.InputError, match="parameter `bias_hh` is torch.float64"):
        cell(torch.randn(2, 3))


@pytest.mark.parametrize("kind", KINDS)
def test_dropout_between_layers_on_packed_input_is_the_same_on_every_engine_and_torch_nn(kind):
    torch.manual_seed(0)
    theirs = getattr(torch.nn, kind)(3, 5, num_layers=3, dropout=0.5, bidirectional=True)
    x = pack_padded_sequence(torch.randn(6, 4, 3), torch.tensor([6, 2, 5, 3]), enforce_sorted=False)
    torch.manual_seed(7)
    want = theirs(x)[0].data
    for backend in ENGINES + ["torch"]:
        ours = getattr(lstmkit, kind)(3, 5, num_layers=3, dropout=0.5, bidirectional=True, backend=backend)
        ours.load_state_dict(theirs.state_dict())
        torch.manual_seed(7)
        torch.testing.assert_close(ours(x)[0].data, want, atol=1e-5, rtol=1e-5, msg=f"backend={backend}")
