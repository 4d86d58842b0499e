"""torch.autograd.gradcheck in float64 through every engine and input form."""

import pytest
import torch
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence

import lstmkit


@pytest.mark.parametrize("backend", ["torch", "reference"])
@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
def test_gradcheck_float64(kind, backend):
    torch.manual_seed(0)
    kw = dict(num_layers=2, bidirectional=True, dtype=torch.float64, backend=backend)
    if kind == "LSTM":
        kw["proj_size"] = 2
    module = getattr(lstmkit, kind)(3, 3, **kw)
    x = torch.randn(4, 2, 3, dtype=torch.float64, requires_grad=True)
    params = list(module.parameters())

    def f(x, *ps):
        out = torch.func.functional_call(module, dict(zip([n for n, _ in module.named_parameters()], ps,
                                                              strict=True)), (x,))
        return out[0]

    assert torch.autograd.gradcheck(f, (x, *params), eps=1e-6, atol=1e-5)


@pytest.mark.parametrize("backend", ["torch", "reference"])
def test_gradcheck_packed_with_states(backend):
    torch.manual_seed(0)
    lstm = lstmkit.LSTM(2, 3, bidirectional=True, dtype=torch.float64, backend=backend)
    data = torch.randn(5, 3, 2, dtype=torch.float64)
    packed = pack_padded_sequence(data, torch.tensor([5, 2, 4]), enforce_sorted=False)
    h0 = torch.randn(2, 3, 3, dtype=torch.float64, requires_grad=True)
    c0 = torch.randn(2, 3, 3, dtype=torch.float64, requires_grad=True)
    x = packed.data.clone().requires_grad_()

    def f(x, h0, c0):
        out, (h, c) = lstm(PackedSequence(x, packed.batch_sizes, packed.sorted_indices, packed.unsorted_indices),
                           (h0, c0))
        return out.data, h, c

    assert torch.autograd.gradcheck(f, (x, h0, c0), eps=1e-6, atol=1e-5)
