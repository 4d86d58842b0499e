"""Interventions on the reference engine: against per-step loops written here, their semantics (the changed value
feeds the rest of the recurrence), gradients, errors, and the untouched path when none is active."""

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence

import lstmkit
from lstmkit import ablate, add, clamp, patch, scale

F64 = torch.float64


def params(module, layer=0, reverse=False):
    suffix = f"_l{layer}{'_reverse' if reverse else ''}"
    return {n[: -len(suffix)]: p for n, p in module.named_parameters() if n.endswith(suffix)}


def edited(edits, name, t, v):
    """Apply the test's own edits: {name: [(t_set, rows, units, fn)]} at step t."""
    for steps, rows, units, fn in edits.get(name, ()):
        if t in steps:
            v = v.clone()
            block = v[rows][:, units]
            v[rows.unsqueeze(1), units.unsqueeze(0)] = fn(block)
    return v


def manual_lstm(x, p, edits, h=None, c=None):
    """A plain LSTM layer step by step, x (T, B, I); edits as for `edited`. Returns (i, f, g, o, c, h) stacked."""
    T, B, _ = x.shape
    H = p["weight_hh"].shape[1]
    h = torch.zeros(B, H, dtype=x.dtype) if h is None else h
    c = torch.zeros(B, H, dtype=x.dtype) if c is None else c
    out = []
    for t in range(T):
        a = x[t] @ p["weight_ih"].T + p["bias_ih"] + h @ p["weight_hh"].T + p["bias_hh"]
        a_i, a_f, a_g, a_o = a.chunk(4, -1)
        i = edited(edits, "i", t, torch.sigmoid(a_i))
        f = edited(edits, "f", t, torch.sigmoid(a_f))
        g = edited(edits, "g", t, torch.tanh(a_g))
        c = edited(edits, "c", t, f * c + i * g)
        o = edited(edits, "o", t, torch.sigmoid(a_o))
        h = edited(edits, "h", t, o * torch.tanh(c))
        out.append((i, f, g, o, c, h))
    return tuple(torch.stack(v) for v in zip(*out, strict=True))


def manual_gru(x, p, edits):
    T, B, _ = x.shape
    h = torch.zeros(B, p["weight_hh"].shape[1], dtype=x.dtype)
    out = []
    for t in range(T):
        x_r, x_z, x_n = (x[t] @ p["weight_ih"].T + p["bias_ih"]).chunk(3, -1)
        h_r, h_z, h_n = (h @ p["weight_hh"].T + p["bias_hh"]).chunk(3, -1)
        r = edited(edits, "r", t, torch.sigmoid(x_r + h_r))
        z = edited(edits, "z", t, torch.sigmoid(x_z + h_z))
        n = edited(edits, "n", t, torch.tanh(x_n + r * h_n))
        h = edited(edits, "h", t, (1 - z) * n + z * h)
        out.append((r, z, n, h))
    return tuple(torch.stack(v) for v in zip(*out, strict=True))


def manual_rnn(x, p, edits):
    T, B, _ = x.shape
    h = torch.zeros(B, p["weight_hh"].shape[1], dtype=x.dtype)
    out = []
    for t in range(T):
        a = edited(edits, "a", t, x[t] @ p["weight_ih"].T + p["bias_ih"] + h @ p["weight_hh"].T + p["bias_hh"])
        h = edited(edits, "h", t, torch.tanh(a))
        out.append((a, h))
    return tuple(torch.stack(v) for v in zip(*out, strict=True))


CASES = [  # (intervention, the same edit for the manual loop: name, steps, rows, units, fn)
    (clamp("f", 0.25, units=[1, 3], steps=slice(2, 5)), ("f", range(2, 5), [0, 1, 2], [1, 3], lambda v: 0 * v + .25)),
    (scale("c", 0.5, rows=[1], steps=[0, 4]), ("c", [0, 4], [1], range(5), lambda v: v * 0.5)),
    (add("i", torch.tensor([0.1, -0.2]), units=[0, 4]), ("i", range(6), [0, 1, 2], [0, 4],
                                                          lambda v: v + torch.tensor([0.1, -0.2], dtype=F64))),
    (ablate("h", units=slice(0, 5, 2), steps=3), ("h", [3], [0, 1, 2], [0, 2, 4], lambda v: 0 * v)),
    (clamp("o", 1.0, rows=torch.tensor([True, False, True])), ("o", range(6), [0, 2], range(5), lambda v: 0 * v + 1)),
    (scale("g", -1.0, units=-1), ("g", range(6), [0, 1, 2], [4], lambda v: -v)),
]


def _as_edit(spec):
    name, steps, rows, units, fn = spec
    return {name: [(set(steps), torch.as_tensor(list(rows)), torch.as_tensor(list(units)), fn)]}


@pytest.mark.parametrize("case", range(len(CASES)))
def test_lstm_intervention_matches_a_manual_loop(case):
    torch.manual_seed(0)
    lstm = lstmkit.LSTM(2, 5, dtype=F64, backend="reference")
    x = torch.randn(6, 3, 2, dtype=F64)
    iv, spec = CASES[case]
    tr = lstm.trace(x, interventions=[iv])
    want = manual_lstm(x, params(lstm), _as_edit(spec))
    for name, got, w in zip("ifgoch", tr[0, 0], want, strict=True):
        torch.testing.assert_close(got, w, msg=name)
    torch.testing.assert_close(tr.output, want[5])


def test_interventions_compose_in_order():
    torch.manual_seed(0)
    lstm = lstmkit.LSTM(2, 4, dtype=F64, backend="reference")
    x = torch.randn(5, 2, 2, dtype=F64)
    tr = lstm.trace(x, interventions=[scale("c", 2.0, units=[0]), add("c", 1.0, units=[0, 1]),
                                      clamp("c", 3.0, units=[1], steps=2)])
    edits = {"c": [(set(range(5)), torch.arange(2), torch.tensor([0]), lambda v: 2 * v),
                   (set(range(5)), torch.arange(2), torch.tensor([0, 1]), lambda v: v + 1),
                   ({2}, torch.arange(2), torch.tensor([1]), lambda v: 0 * v + 3)]}
    torch.testing.assert_close(tr[0, 0].c, manual_lstm(x, params(lstm), edits)[4])


@pytest.mark.parametrize("kind", ["GRU", "RNN"])
def test_gru_and_rnn_interventions_match_manual_loops(kind):
    torch.manual_seed(0)
    module = getattr(lstmkit, kind)(2, 4, dtype=F64, backend="reference")
    x = torch.randn(5, 2, 2, dtype=F64)
    first = "r" if kind == "GRU" else "a"
    ivs = [clamp(first, 0.5, units=[1], steps=slice(1, 3)), scale("h", 0.5, rows=[0], steps=[2, 3])]
    edits = {first: [(set(range(1, 3)), torch.arange(2), torch.tensor([1]), lambda v: 0 * v + .5)],
             "h": [({2, 3}, torch.tensor([0]), torch.arange(4), lambda v: v * 0.5)]}
    if kind == "GRU":
        ivs.append(add("n", 0.3, units=[0, 2]))
        edits["n"] = [(set(range(5)), torch.arange(2), torch.tensor([0, 2]), lambda v: v + 0.3)]
    tr = module.trace(x, interventions=ivs)
    want = (manual_gru if kind == "GRU" else manual_rnn)(x, params(module), edits)
    for got, w in zip(tr[0, 0], want, strict=True):
        torch.testing.assert_close(got, w)


def test_reverse_direction_steps_are_the_trace_index():
    torch.manual_seed(0)
    lstm = lstmkit.LSTM(2, 3, bidirectional=True, dtype=F64, backend="reference")
    x = torch.randn(6, 2, 2, dtype=F64)
    tr = lstm.trace(x, interventions=[clamp("f", 0.0, direction=1, steps=[1, 4], units=[2])])
    edits = {"f": [({6 - 1 - 1, 6 - 1 - 4}, torch.arange(2), torch.tensor([2]), lambda v: 0 * v)]}
    want = manual_lstm(x.flip(0), params(lstm, reverse=True), edits)
    for got, w in zip(tr[0, 1], want, strict=True):
        torch.testing.assert_close(got, w.flip(0))
    assert (tr[0, 1].f[[1, 4], :, 2] == 0).all() and (tr[0, 1].f[[0, 2, 3, 5], :, 2] != 0).all()
    torch.testing.assert_close(tr[0, 0].f, manual_lstm(x, params(lstm), {})[1])   # direction 0 untouched


def test_an_intervened_forget_gate_changes_c_and_every_later_step():
    torch.manual_seed(0)
    lstm = lstmkit.LSTM(2, 4, backend="reference")
    x = torch.randn(8, 1, 2)
    clean = lstm.trace(x)
    tr = lstm.trace(x, interventions=[clamp("f", 0.0, units=[1], steps=3)])
    r, r0 = tr[0, 0], clean[0, 0]
    torch.testing.assert_close(r.c[3, :, 1], (r.i * r.g)[3, :, 1])        # c_3 = f c_2 + i g with f = 0
    torch.testing.assert_close(r.c[:3], r0.c[:3])                           # earlier steps unchanged
    assert ((r.h[4:] - r0.h[4:]).abs() > 0).all(dim=-1).any()               # later steps changed
    assert not torch.equal(tr.output[-1], clean.output[-1])


def test_ablated_c_gives_h_zero_at_that_step():
    torch.manual_seed(0)
    lstm = lstmkit.LSTM(2, 4, backend="reference")
    tr = lstm.trace(torch.randn(6, 2, 2), interventions=[ablate("c", steps=2)])
    assert (tr[0, 0].c[2] == 0).all() and (tr[0, 0].h[2] == 0).all()        # h = o tanh(c): c is edited first


def test_patching_the_full_state_restores_the_clean_run():
    torch.manual_seed(0)
    lstm = lstmkit.LSTM(2, 4, num_layers=2, backend="reference")
    clean_x = torch.randn(7, 3, 2)
    corrupt_x = clean_x.clone()
    corrupt_x[:3] += 1.0                                                     # the first three steps differ
    clean = lstm.trace(clean_x)
    ivs = [patch(n, clean, layer=layer, steps=2) for layer in (0, 1) for n in ("c", "h")]
    tr = lstm.trace(corrupt_x, interventions=ivs)
    torch.testing.assert_close(tr.output[3:], clean.output[3:])
    assert not torch.allclose(tr.output[:2], clean.output[:2])
    y, _ = lstm(corrupt_x, interventions=ivs)                                 # forward: the same values
    torch.testing.assert_close(y, tr.output)


def test_patch_from_a_tensor_and_mean_ablation():
    torch.manual_seed(0)
    lstm = lstmkit.LSTM(2, 4, batch_first=True, backend="reference")
    x = torch.randn(3, 5, 2)                                                 # (B, T, I)
    source = torch.full((3, 5, 4), 0.5)
    tr = lstm.trace(x, interventions=[patch("g", source, rows=[2], steps=[0, 1], units=[3])])
    assert (tr[0, 0].g[2, :2, 3] == 0.5).all() and (tr[0, 0].g[:2, :, 3] != 0.5).all()
    ref = lstm.trace(torch.randn(4, 9, 2))
    mean = ref[0, 0].o.mean((0, 1))
    tr = lstm.trace(x, interventions=[ablate("o", mean=ref, units=[0, 2])])
    torch.testing.assert_close(tr[0, 0].o[..., [0, 2]], mean[[0, 2]].expand(3, 5, 2))


def test_mean_ablation_of_a_packed_trace_counts_valid_steps_only():
    torch.manual_seed(0)
    lstm = lstmkit.LSTM(2, 3, backend="reference")
    x = torch.randn(6, 3, 2)
    lengths = torch.tensor([6, 2, 4])
    ref = lstm.trace(pack_padded_sequence(x, lengths, enforce_sorted=False))
    f = ref[0, 0].f
    want = torch.cat([f[:n, b] for b, n in enumerate(lengths.tolist())]).mean(0)
    tr = lstm.trace(x, interventions=[ablate("f", mean=ref)])
    torch.testing.assert_close(tr[0, 0].f[0, 0], want)


def test_packed_input_rows_are_the_callers_rows():
    torch.manual_seed(0)
    lstm = lstmkit.LSTM(2, 3, bidirectional=True, backend="reference")
    x = torch.randn(6, 3, 2)
    lengths = torch.tensor([2, 6, 4])
    packed = pack_padded_sequence(x, lengths, enforce_sorted=False)
    ivs = [clamp("c", 0.5, rows=[2], steps=1), clamp("h", 0.0, rows=0, direction=1, steps=0)]
    tr = lstm.trace(packed, interventions=ivs)
    for b, n in enumerate(lengths.tolist()):
        own = [clamp("c", 0.5, steps=1)] if b == 2 else [clamp("h", 0.0, direction=1, steps=0)] if b == 0 else []
        single = lstm.trace(x[:n, b:b + 1], interventions=own)
        for d in (0, 1):
            for got, want in zip(tr[0, d], single[0, d], strict=True):
                torch.testing.assert_close(got[:n, b], want[:, 0])
                assert (got[n:, b] == 0).all()


def test_unbatched_input():
    torch.manual_seed(0)
    lstm = lstmkit.LSTM(2, 3, backend="reference")
    x = torch.randn(5, 2)
    tr = lstm.trace(x, interventions=[clamp("i", 1.0, steps=[1, 2])])
    assert tr[0, 0].i.shape == (5, 3) and (tr[0, 0].i[1:3] == 1).all()
    with pytest.raises(ValueError, match="rows"):
        lstm(x, interventions=[clamp("i", 1.0, rows=[0])])


def test_context_manager_applies_to_every_call_and_nests():
    torch.manual_seed(0)
    lstm = lstmkit.LSTM(2, 3, backend="reference")
    x = torch.randn(4, 2, 2)
    y0, _ = lstm(x)
    with lstm.intervene(clamp("h", 0.0, units=[0])):
        with lstm.intervene(clamp("h", 1.0, units=[1])):
            y, _ = lstm(x)
            tr = lstm.trace(x, interventions=[scale("h", 2.0, units=[1])])
        y1, _ = lstm(x)
    assert (y[..., 0] == 0).all() and (y[..., 1] == 1).all()
    assert (tr.output[..., 1] == 2).all() and (tr.output[..., 0] == 0).all()   # the call's own apply last
    assert (y1[..., 0] == 0).all() and (y1[..., 1] != 1).all()
    with pytest.raises(RuntimeError), lstm.intervene(clamp("h", 0.0)):
        raise RuntimeError("leaves the block")
    assert torch.equal(lstm(x)[0], y0)


def test_nothing_active_is_todays_path():
    torch.manual_seed(0)
    for module in (lstmkit.LSTM(3, 8, num_layers=2), lstmkit.GRU(3, 8), lstmkit.LSTM(3, 8, peephole=True)):
        x = torch.randn(12, 4, 3)
        y0, s0 = module(x)
        config = module._call_config(*module._prepare(x, None)[:2], None)
        assert config == module._config() and config.edits is None
        with module.intervene():
            y1, s1 = module(x, interventions=[])
            assert module.engine_for(x, interventions=[]) == module.engine_for(x)
        assert torch.equal(y0, y1)
        assert all(torch.equal(a, b) for a, b in zip(torch.utils._pytree.tree_leaves(s0),
                                                     torch.utils._pytree.tree_leaves(s1), strict=True))


def test_clamp_passes_no_gradient_to_what_it_replaced():
    torch.manual_seed(0)
    lstm = lstmkit.LSTM(2, 3, backend="reference")
    x = torch.randn(6, 2, 2, requires_grad=True)
    y, _ = lstm(x, interventions=[clamp("c", 0.1, steps=2), clamp("h", 0.2, steps=2)])
    y[3:].sum().backward()
    assert (x.grad[:3] == 0).all() and (x.grad[3:] != 0).any()


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
def test_gradcheck_float64_with_interventions(kind):
    torch.manual_seed(0)
    module = getattr(lstmkit, kind)(2, 3, bidirectional=True, dtype=F64, backend="reference")
    names = module.cell.records
    x = torch.randn(4, 2, 2, dtype=F64, requires_grad=True)
    source = torch.randn(4, 2, 3, dtype=F64)
    ivs = [scale(names[0], 1.5, units=[0, 2]), clamp(names[1], 0.3, steps=1, direction=1),
           add(names[-1], 0.2, rows=[1]), patch(names[-1], source, steps=2, units=[1]), ablate(names[0], steps=3)]
    ps = list(module.parameters())

    def f(x, *ps):
        named = dict(zip([n for n, _ in module.named_parameters()], ps, strict=True))
        return torch.func.functional_call(module, named, (x,), {"interventions": ivs})[0]

    assert torch.autograd.gradcheck(f, (x, *ps), eps=1e-6, atol=1e-5)


def test_zoneout_states_are_edited_after_the_mix():
    torch.manual_seed(0)
    lstm = lstmkit.LSTM(2, 3, zoneout=0.3, backend="reference").eval()
    tr = lstm.trace(torch.randn(5, 2, 2), interventions=[clamp("c", 0.7, steps=2), clamp("h", -0.2, steps=3)])
    assert (tr[0, 0].c[2] == 0.7).all() and (tr[0, 0].h[3] == -0.2).all()


class MGU(lstmkit.Cell):
    """A custom cell whose step takes no `edit`: only its state h can be intervened on."""

    gates = 2
    records = ("f", "n", "h")

    def step(self, xw, state, w):
        (h,) = state
        x_f, x_n = xw.chunk(2, dim=-1)
        h_f, h_n = w.hh(h).chunk(2, dim=-1)
        f = torch.sigmoid(x_f + h_f)
        n = torch.tanh(x_n + f * h_n)
        h = (1 - f) * h + f * n
        return (h,), (f, n, h)


class EditableMGU(MGU):
    def step(self, xw, state, w, edit=lstmkit.cells.base.unedited):
        (h,) = state
        x_f, x_n = xw.chunk(2, dim=-1)
        h_f, h_n = w.hh(h).chunk(2, dim=-1)
        f = edit("f", torch.sigmoid(x_f + h_f))
        n = edit("n", torch.tanh(x_n + f * h_n))
        h = edit("h", (1 - f) * h + f * n)
        return (h,), (f, n, h)


def test_custom_cells_states_only_without_edit_and_every_record_with_it():
    torch.manual_seed(0)
    plain = lstmkit.Recurrent(MGU, 2, 3)
    x = torch.randn(5, 2, 2)
    tr = plain.trace(x, interventions=[clamp("h", 0.5, steps=1)])
    assert (tr[0, 0].h[1] == 0.5).all()
    with pytest.raises(ValueError, match=r"step\(\) takes no `edit`.*\(h\)"):
        plain(x, interventions=[clamp("f", 0.5)])
    editable = lstmkit.Recurrent(EditableMGU, 2, 3)
    editable.load_state_dict(plain.state_dict())
    tr = editable.trace(x, interventions=[clamp("f", 1.0, steps=1)])
    torch.testing.assert_close(tr[0, 0].h[1], tr[0, 0].n[1])                # f = 1: h = n


@pytest.mark.parametrize("iv, message", [
    (clamp("q", 1.0), r"no record 'q'; its records are i, f, g, o, c, h"),
    (clamp("f", 1.0, layer=2), r"layer=2 is out of range: the module has 2 layer\(s\)"),
    (clamp("f", 1.0, direction=1), r"direction=1 is out of range.*bidirectional=True"),
    (clamp("f", 1.0, units=[3, 4]), r"`units` 4 is out of range: record 'f' has 4 features"),
    (clamp("h", 1.0, units=[3]), r"`units` 3 is out of range: record 'h' has 3 features"),
    (clamp("f", 1.0, steps=slice(0, 9), units=[True, False]), r"bool mask `units` must have 4 entries"),
    (clamp("f", 1.0, steps=5), r"`steps` 5 is out of range: the input has 5 steps"),
    (clamp("f", 1.0, rows=[-3]), r"`rows` -3 is out of range: the batch has 2 rows"),
    (clamp("f", torch.ones(3), units=[0, 1]), r"`value` must be .* over the 2 selected unit"),
    (patch("c", torch.zeros(5, 3, 4)), r"laid out like record 'c' of this call, \(T, B, S\) = \(5, 2, 4\)"),
    (clamp("f", 1.0, units=[0.5]), r"`units` must be None, an int"),
])
def test_errors_name_the_problem(iv, message):
    lstm = lstmkit.LSTM(2, 4, num_layers=2, proj_size=3, backend="reference")
    with pytest.raises((ValueError, TypeError), match=message):
        lstm(torch.randn(5, 2, 2), interventions=[iv])


def test_errors_for_sources_of_another_model_and_bad_arguments():
    lstm = lstmkit.LSTM(2, 4, backend="reference")
    x = torch.randn(5, 2, 2)
    other = lstmkit.GRU(2, 4).trace(x)
    with pytest.raises(ValueError, match="mean trace comes from another model"):
        lstm(x, interventions=[ablate("f", mean=other)])
    with pytest.raises(ValueError, match="source trace comes from another model"):
        lstm(x, interventions=[patch("h", lstmkit.LSTM(2, 4, num_layers=2).trace(x))])
    with pytest.raises(ValueError, match="has 5 features, this module's 4"):
        lstm(x, interventions=[patch("h", lstmkit.LSTM(2, 5).trace(x))])
    with pytest.raises(ValueError, match=r"\(T, B, S\) = \(5, 2, 4\), got \(6, 2, 4\)"):
        lstm(x, interventions=[patch("h", lstm.trace(torch.randn(6, 2, 2)))])
    with pytest.raises(TypeError, match="`interventions` must be None, an intervention or a list"):
        lstm(x, interventions="f")
    with pytest.raises(TypeError, match=r"interventions\[0\] must be an lstmkit intervention"):
        lstm(x, interventions=[("f", 1.0)])
    with pytest.raises(TypeError, match="`value` of clamp"):
        clamp("f", "one")
    with pytest.raises(TypeError, match="`mean` of ablate"):
        ablate("f", mean=torch.zeros(4))
    with pytest.raises(ValueError, match="no record 'x'"), lstm.intervene(clamp("x", 1.0)):
        pass


def test_torch_backend_says_why_and_names_auto():
    lstm = lstmkit.LSTM(2, 4, backend="torch")
    with pytest.raises(ValueError, match="opaque call, so an intervention cannot reach inside it; use "
                                         "backend='auto'"):
        lstm(torch.randn(5, 2, 2), interventions=[clamp("f", 1.0)])


def test_cell_modules_take_interventions_on_their_one_step():
    torch.manual_seed(0)
    cell = lstmkit.LSTMCell(2, 4)
    x, h, c = torch.randn(3, 2), torch.randn(3, 4), torch.randn(3, 4)
    h1, c1 = cell(x, (h, c), interventions=[clamp("f", 0.0, rows=[1]), scale("h", 2.0, units=[0])])
    p = {"weight_ih": cell.weight_ih, "weight_hh": cell.weight_hh, "bias_ih": cell.bias_ih, "bias_hh": cell.bias_hh}
    edits = {"f": [({0}, torch.tensor([1]), torch.arange(4), lambda v: 0 * v)],
             "h": [({0}, torch.arange(3), torch.tensor([0]), lambda v: 2 * v)]}
    want = manual_lstm(x.unsqueeze(0), p, edits, h, c)
    torch.testing.assert_close(h1, want[5][0])
    torch.testing.assert_close(c1, want[4][0])
    gru = lstmkit.GRUCell(2, 4)
    with gru.intervene(clamp("h", 0.5, units=[2])):
        assert (gru(x)[:, 2] == 0.5).all()
    assert (lstmkit.RNNCell(2, 4)(x[0], interventions=[ablate("h")]) == 0).all()       # unbatched
    with pytest.raises(ValueError, match="`steps` 1 is out of range: the input has 1 steps"):
        cell(x, interventions=[clamp("f", 0.0, steps=1)])
    with pytest.raises(ValueError, match="cannot run this call.*intervention"):
        lstmkit.LSTMCell(2, 4, backend="torch")(x, interventions=[clamp("f", 0.0)])
