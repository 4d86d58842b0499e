"""The LSTM variants torch.nn lacks, each against an independent per-step implementation written here."""

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

import lstmkit
from lstmkit import InputError, InputTypeError


def ln(v, gain, bias=None, eps=1e-5):
    mean = v.mean(-1, keepdim=True)
    var = ((v - mean) ** 2).mean(-1, keepdim=True)
    out = gain * (v - mean) / torch.sqrt(var + eps)
    return out if bias is None else out + bias


def manual_lstm(x, h, c, p, *, peephole, layer_norm, coupled, rec_mask=None, zoneout=None, zone_p=0.0):
    """A plain loop over the documented equations; p holds one layer-direction's parameters by base name."""
    ys = []
    for t in range(x.shape[0]):
        h_in = h if rec_mask is None else h * rec_mask
        a_x = x[t] @ p["weight_ih"].T
        a_h = h_in @ p["weight_hh"].T
        if layer_norm:
            a_x, a_h = ln(a_x, p["weight_ln_ih"]), ln(a_h, p["weight_ln_hh"])
        a = a_x + a_h
        if "bias_ih" in p:
            a = a + p["bias_ih"] + p["bias_hh"]
        H = c.shape[-1]
        a_i, a_f, a_g, a_o = a[:, :H], a[:, H:2 * H], a[:, 2 * H:3 * H], a[:, 3 * H:]
        if peephole:
            a_i = a_i + p["weight_peephole"][0] * c
            a_f = a_f + p["weight_peephole"][1] * c
        i = torch.sigmoid(a_i)
        f = 1 - i if coupled else torch.sigmoid(a_f)
        c_new = f * c + i * torch.tanh(a_g)
        if peephole:
            a_o = a_o + p["weight_peephole"][2] * c_new
        cell_out = ln(c_new, p["weight_ln_c"], p["bias_ln_c"]) if layer_norm else c_new
        h_new = torch.sigmoid(a_o) * torch.tanh(cell_out)
        if "weight_hr" in p:
            h_new = h_new @ p["weight_hr"].T
        if zoneout is not None:
            z_h, z_c = zoneout
            h_new = z_h[t] * h + (1 - z_h[t]) * h_new
            c_new = z_c[t] * c + (1 - z_c[t]) * c_new
        elif zone_p:
            h_new = zone_p * h + (1 - zone_p) * h_new
            c_new = zone_p * c + (1 - zone_p) * c_new
        h, c = h_new, c_new
        ys.append(h)
    return torch.stack(ys), h, c


def params_of(module, suffix="_l0"):
    return {n[: -len(suffix)]: p for n, p in module.named_parameters() if n.endswith(suffix)}


@st.composite
def variants(draw):
    H = draw(st.integers(2, 5))
    return dict(peephole=draw(st.booleans()), layer_norm=draw(st.booleans()), coupled=draw(st.booleans()),
                proj_size=draw(st.integers(0, H - 1)), bias=draw(st.booleans()), hidden_size=H,
                recurrent_dropout=draw(st.sampled_from([0.0, 0.3])), zoneout=draw(st.sampled_from([0.0, 0.25])),
                training=draw(st.booleans()), T=draw(st.integers(1, 5)), B=draw(st.integers(1, 3)))


@given(variants())
def test_variants_match_an_independent_step_loop(v):
    T, B, I, H, P = v["T"], v["B"], 3, v["hidden_size"], v["proj_size"]
    torch.manual_seed(0)
    lstm = lstmkit.LSTM(I, H, proj_size=P, bias=v["bias"], peephole=v["peephole"], layer_norm=v["layer_norm"],
                        coupled=v["coupled"], recurrent_dropout=v["recurrent_dropout"], zoneout=v["zoneout"],
                        dtype=torch.float64)
    with torch.no_grad():                    # move the LN gains off 1 so a misplaced norm shows
        for n, p in lstm.named_parameters():
            if "ln" in n:
                p.add_(torch.randn_like(p) * 0.3)
    lstm.train(v["training"])
    x = torch.randn(T, B, I, dtype=torch.float64)
    R = P or H
    h0, c0 = torch.randn(1, B, R, dtype=torch.float64), torch.randn(1, B, H, dtype=torch.float64)
    torch.manual_seed(5)
    out, (h_n, c_n) = lstm(x, (h0, c0))
    # The masks, drawn as documented: per layer and direction, the recurrent mask, then a zoneout mask per state.
    torch.manual_seed(5)
    rec_mask = zoneout = None
    if v["training"] and v["recurrent_dropout"]:
        keep = 1 - v["recurrent_dropout"]
        rec_mask = torch.empty(B, R, dtype=torch.float64).bernoulli_(keep) / keep
    if v["training"] and v["zoneout"]:
        zoneout = (torch.empty(T, B, R, dtype=torch.float64).bernoulli_(v["zoneout"]),
                   torch.empty(T, B, H, dtype=torch.float64).bernoulli_(v["zoneout"]))
    want, h, c = manual_lstm(x, h0[0], c0[0], params_of(lstm), peephole=v["peephole"], layer_norm=v["layer_norm"],
                             coupled=v["coupled"], rec_mask=rec_mask, zoneout=zoneout,
                             zone_p=0.0 if v["training"] else v["zoneout"])
    torch.testing.assert_close(out, want, atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(h_n[0], h, atol=1e-10, rtol=1e-10)
    torch.testing.assert_close(c_n[0], c, atol=1e-10, rtol=1e-10)


def test_variants_stack_and_reverse_like_the_plain_lstm():
    """Two bidirectional layers of a peephole+layer-norm LSTM, packed, equal manual loops per layer/direction."""
    torch.manual_seed(0)
    lstm = lstmkit.LSTM(3, 4, num_layers=2, bidirectional=True, peephole=True, layer_norm=True).eval()
    x = torch.randn(5, 2, 3)
    out, (h_n, c_n) = lstm(x)
    layer_in = x
    for layer in range(2):
        outs = []
        for d, suffix in enumerate([f"_l{layer}", f"_l{layer}_reverse"]):
            xin = layer_in if d == 0 else layer_in.flip(0)
            y, h, c = manual_lstm(xin, torch.zeros(2, 4), torch.zeros(2, 4), params_of(lstm, suffix),
                                  peephole=True, layer_norm=True, coupled=False)
            outs.append(y if d == 0 else y.flip(0))
            torch.testing.assert_close(h_n[2 * layer + d], h)
            torch.testing.assert_close(c_n[2 * layer + d], c)
        layer_in = torch.cat(outs, -1)
    torch.testing.assert_close(out, layer_in)


@pytest.mark.parametrize("option", [dict(peephole=True), dict(layer_norm=True), dict(coupled=True),
                                    dict(recurrent_dropout=0.3), dict(zoneout=0.2),
                                    dict(peephole=True, layer_norm=True, coupled=True, recurrent_dropout=0.2,
                                         zoneout=0.3, proj_size=2)])
def test_variant_gradcheck_float64_with_masks_fixed(option):
    torch.manual_seed(0)
    lstm = lstmkit.LSTM(2, 3, num_layers=2, bidirectional=True, dtype=torch.float64, **option)
    names = [n for n, _ in lstm.named_parameters()]
    x = torch.randn(4, 2, 2, dtype=torch.float64, requires_grad=True)

    def f(x, *ps):
        torch.manual_seed(11)                 # the same masks at every evaluation
        return torch.func.functional_call(lstm, dict(zip(names, ps, strict=True)), (x,))[0]

    assert torch.autograd.gradcheck(f, (x, *lstm.parameters()), eps=1e-6, atol=1e-5)


def test_state_dict_names_extend_torchs_scheme():
    lstm = lstmkit.LSTM(3, 4, bidirectional=True, peephole=True, layer_norm=True)
    names = list(lstm.state_dict())
    torch_names = list(torch.nn.LSTM(3, 4, bidirectional=True).state_dict())
    assert names[: len(torch_names)] == torch_names
    assert names[len(torch_names):] == [
        "weight_peephole_l0", "weight_ln_ih_l0", "weight_ln_hh_l0", "weight_ln_c_l0", "bias_ln_c_l0",
        "weight_peephole_l0_reverse", "weight_ln_ih_l0_reverse", "weight_ln_hh_l0_reverse",
        "weight_ln_c_l0_reverse", "bias_ln_c_l0_reverse"]
    assert lstm.weight_peephole_l0.shape == (3, 4)
    assert lstm.weight_ln_ih_l0.shape == (16,) and torch.equal(lstm.weight_ln_ih_l0, torch.ones(16))
    assert torch.equal(lstm.bias_ln_c_l0, torch.zeros(4))


def test_torch_weights_load_into_a_variant_with_strict_false():
    plain = torch.nn.LSTM(3, 4)
    lstm = lstmkit.LSTM(3, 4, peephole=True)
    missing, unexpected = lstm.load_state_dict(plain.state_dict(), strict=False)
    assert missing == ["weight_peephole_l0"] and unexpected == []


def test_coupled_forget_rows_get_no_gradient():
    lstm = lstmkit.LSTM(3, 4, coupled=True)
    lstm(torch.randn(5, 2, 3))[0].sum().backward()
    assert lstm.weight_ih_l0.grad[4:8].abs().max() == 0
    assert lstm.weight_ih_l0.grad[:4].abs().max() > 0


def test_coupled_trace_has_f_equal_one_minus_i():
    tr = lstmkit.LSTM(3, 4, coupled=True).trace(torch.randn(5, 2, 3))
    torch.testing.assert_close(tr[0].f, 1 - tr[0].i)


def test_peephole_trace_still_satisfies_the_belt_equation():
    tr = lstmkit.LSTM(3, 4, peephole=True).trace(torch.randn(6, 2, 3))
    r = tr[0]
    c_prev = torch.cat([torch.zeros_like(r.c[:1]), r.c[:-1]])
    torch.testing.assert_close(r.c, r.f * c_prev + r.i * r.g)
    torch.testing.assert_close(r.h, r.o * torch.tanh(r.c))


def test_zoneout_trace_records_the_carried_state():
    lstm = lstmkit.LSTM(3, 4, zoneout=0.5).eval()
    x = torch.randn(6, 2, 3)
    tr = lstm.trace(x)
    out, (h_n, c_n) = lstm(x)
    torch.testing.assert_close(tr[0].h, out)
    torch.testing.assert_close(tr[0].c[-1], c_n[0])


def test_forget_bias_sets_the_effective_bias():
    lstm = lstmkit.LSTM(3, 4, num_layers=2, bidirectional=True, forget_bias=3.0)
    for layer in range(2):
        for suffix in ("", "_reverse"):
            b = getattr(lstm, f"bias_ih_l{layer}{suffix}") + getattr(lstm, f"bias_hh_l{layer}{suffix}")
            assert torch.equal(b[4:8], torch.full((4,), 3.0))
    torch.testing.assert_close(lstm.trace(torch.zeros(1, 1, 3))[0].f, torch.sigmoid(torch.tensor(3.0)).expand(1, 1, 4))
    cell = lstmkit.LSTMCell(3, 4, forget_bias=1.0)
    assert torch.equal((cell.bias_ih + cell.bias_hh)[4:8], torch.ones(4))


def test_forget_bias_leaves_the_torch_kernel_in_charge():
    lstm = lstmkit.LSTM(3, 4, forget_bias=2.0, backend="torch")
    assert lstm(torch.randn(2, 1, 3))[0].shape == (2, 1, 4)


@pytest.mark.parametrize("module", [lstmkit.LSTM(3, 8, num_layers=2), lstmkit.LSTMCell(3, 8),
                                    torch.nn.LSTM(3, 8)])
def test_chrono_init_spreads_forget_biases_over_log_range(module):
    torch.manual_seed(0)
    lstmkit.init.chrono_(module, t_max=100)
    for name, b_ih in module.named_parameters():
        if "bias_ih" in name:
            b_hh = dict(module.named_parameters())[name.replace("bias_ih", "bias_hh")]
            b = b_ih + b_hh
            b_i, b_f = b[:8], b[8:16]
            assert torch.all(b_f >= 0) and torch.all(b_f <= math.log(99))
            torch.testing.assert_close(b_i, -b_f)


def test_chrono_init_rejects_what_it_cannot_serve():
    with pytest.raises(InputTypeError, match="`module` must be an LSTM"):
        lstmkit.init.chrono_(lstmkit.GRU(3, 4), 10)
    with pytest.raises(InputError, match="`t_max` must be greater than 2"):
        lstmkit.init.chrono_(lstmkit.LSTM(3, 4), 1)
    with pytest.raises(InputError, match="no biases"):
        lstmkit.init.chrono_(lstmkit.LSTM(3, 4, bias=False), 10)


def test_regularisers_act_only_in_training_and_follow_the_seed():
    lstm = lstmkit.LSTM(3, 6, recurrent_dropout=0.4, zoneout=0.3)
    x = torch.randn(8, 2, 3)
    torch.manual_seed(1)
    a = lstm(x)[0]
    torch.manual_seed(1)
    b = lstm(x)[0]
    c = lstm(x)[0]
    assert torch.equal(a, b) and not torch.equal(a, c)
    lstm.eval()
    plain = lstmkit.LSTM(3, 6, zoneout=0.3).eval()
    plain.load_state_dict(lstm.state_dict())
    torch.testing.assert_close(lstm(x)[0], plain(x)[0])      # no recurrent dropout at eval


def test_cell_variants_equal_one_step_of_the_layer():
    torch.manual_seed(0)
    opts = dict(peephole=True, layer_norm=True, coupled=True, zoneout=0.2)
    layer = lstmkit.LSTM(3, 4, **opts).eval()
    cell = lstmkit.LSTMCell(3, 4, **opts).eval()
    cell.load_state_dict({k[:-3]: v for k, v in layer.state_dict().items()})
    x = torch.randn(1, 2, 3)
    h0, c0 = torch.randn(1, 2, 4), torch.randn(1, 2, 4)
    _, (h, c) = layer(x, (h0, c0))
    h_cell, c_cell = cell(x[0], (h0[0], c0[0]))
    torch.testing.assert_close(h_cell, h[0])
    torch.testing.assert_close(c_cell, c[0])


def test_cell_recurrent_dropout_mask_is_kept_until_reset():
    cell = lstmkit.LSTMCell(3, 50, recurrent_dropout=0.5)
    x, state = torch.randn(2, 3), (torch.randn(2, 50), torch.randn(2, 50))
    cell(x, state)
    first = cell._recurrent_mask.clone()
    cell(x, state)
    assert torch.equal(first, cell._recurrent_mask)
    cell.reset_dropout_mask()
    cell(x, state)
    assert not torch.equal(first, cell._recurrent_mask)


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    (dict(recurrent_dropout=1.0), InputError, r"`recurrent_dropout` must be a probability in \[0, 1\), got 1.0"),
    (dict(zoneout=-0.5), InputError, r"`zoneout` must be a probability"),
    (dict(zoneout="0.1"), InputTypeError, r"`zoneout` must be a float"),
    (dict(forget_bias=float("nan")), InputError, r"`forget_bias` must be finite, got nan"),
    (dict(forget_bias=float("inf")), InputError, r"`forget_bias` must be finite"),
    (dict(forget_bias=1.0, bias=False), InputError, r"`forget_bias`=1.0 needs bias=True"),
    (dict(peephole=1), InputTypeError, r"`peephole` must be True or False, got int"),
    (dict(layer_norm="yes"), InputTypeError, r"`layer_norm` must be True or False"),
    (dict(coupled=None), InputTypeError, r"`coupled`"),
])
def test_bad_variant_values_are_named(kwargs, error, match):
    with pytest.raises(error, match=match):
        lstmkit.LSTM(3, 4, **kwargs)
    with pytest.raises(error, match=match):
        lstmkit.LSTMCell(3, 4, **kwargs)


def test_auto_runs_variants_on_an_engine_that_can():
    x = torch.randn(5, 2, 3)
    assert lstmkit.LSTM(3, 4, layer_norm=True).engine_for(x) in ("fused", "reference")
    assert lstmkit.LSTM(3, 4).engine_for(x) == "torch"
    assert lstmkit.GRU(3, 4, zoneout=0.1).engine_for(x) in ("fused", "reference")
    with torch.enable_grad():     # differentiable records: the fused engine keeps none
        assert lstmkit.LSTM(3, 4, peephole=True).engine_for(x, trace=True) == "reference"
