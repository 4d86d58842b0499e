"""Dynamic quantisation: a plain lstmkit module becomes torch's quantised module (equal to torch.nn's quantised twin);
what torch's quantised kernels cannot compute raises instead of being dropped or left in float."""

import warnings

import pytest
import torch
from torch import nn
from torch.ao.quantization import quantize_dynamic as torch_quantize_dynamic

import lstmkit
from lstmkit.quantization import quantize_dynamic

SPEC = {nn.LSTM, nn.GRU, nn.LSTMCell, nn.GRUCell, nn.RNNCell}


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():                  # torch 2.13 deprecates torch.ao.quantization's eager mode
        warnings.simplefilter("ignore")
        yield


@pytest.mark.parametrize(("kind", "kw"), [("LSTM", dict(num_layers=2, bidirectional=True)), ("GRU", {}),
                                          ("LSTMCell", {}), ("GRUCell", {}), ("RNNCell", {"nonlinearity": "relu"})])
def test_plain_module_quantises_to_torchs_quantised_twin(kind, kw):
    torch.manual_seed(0)
    ours = getattr(lstmkit, kind)(3, 4, **kw)
    torch.manual_seed(0)
    theirs = getattr(nn, kind)(3, 4, **kw)
    q_ours = quantize_dynamic(nn.Sequential(ours), SPEC)[0]
    q_theirs = torch_quantize_dynamic(nn.Sequential(theirs), SPEC)[0]
    assert type(q_ours) is type(q_theirs) and type(q_theirs).__module__.startswith("torch.ao.nn.quantized.dynamic")
    x = torch.randn(5, 2, 3) if "Cell" not in kind else torch.randn(2, 3)
    a, b = q_ours(x), q_theirs(x)
    for s, t in zip(*(o if isinstance(o, tuple) else (o,) for o in (a, b)), strict=True):
        assert torch.equal(*(v if isinstance(v, torch.Tensor) else torch.stack(v) for v in (s, t)))


@pytest.mark.parametrize("kw", [dict(peephole=True), dict(layer_norm=True), dict(zoneout=0.1),
                                dict(recurrent_dropout=0.2), dict(proj_size=2)])
def test_what_torchs_quantised_kernel_cannot_compute_raises(kw):
    with pytest.raises(lstmkit.InputError, match="cannot be quantised"):
        quantize_dynamic(nn.Sequential(lstmkit.LSTM(3, 4, **kw)), {nn.LSTM})


def test_torchs_quantize_dynamic_without_lstmkits_mapping_raises_instead_of_leaving_float():
    with pytest.raises(lstmkit.InputError, match="marked for quantisation"):
        torch_quantize_dynamic(nn.Sequential(lstmkit.GRU(3, 4)), {lstmkit.GRU})


def test_a_module_marked_for_quantisation_but_not_converted_refuses_to_run_in_float():
    gru = lstmkit.GRU(3, 4)
    gru.qconfig = torch.ao.quantization.default_dynamic_qconfig
    with pytest.raises(lstmkit.InputError, match="marked for quantisation"):
        gru(torch.randn(5, 2, 3))


def test_flat_weights_are_torchs_even_with_a_variant():
    torch.manual_seed(0)
    ours = lstmkit.LSTM(3, 4, num_layers=2, peephole=True, layer_norm=True)
    theirs = nn.LSTM(3, 4, num_layers=2)
    theirs.load_state_dict({k: v for k, v in ours.state_dict().items() if k in theirs.state_dict()})
    assert ours._flat_weights_names == theirs._flat_weights_names
    assert all(torch.equal(a, b) for a, b in zip(ours._flat_weights, theirs._flat_weights, strict=True))
    assert {"weight_peephole_l0", "weight_ln_ih_l1"} <= dict(ours.named_parameters()).keys()
