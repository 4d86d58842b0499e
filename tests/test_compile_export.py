"""torch.compile, torch.export, torch.jit.trace and torch.fx on lstmkit modules: no graph break, results equal to
eager, and another sequence length either computed or refused, never truncated. Small and few: compiling is slow."""

import subprocess
import sys

import pytest
import torch
import torch._dynamo as dynamo

import lstmkit
from lstmkit.engines.fused import constant, ops

# (module, options): the plain modules and every variant path the fused engine has
CASES = [("LSTM", {}), ("LSTM", {"peephole": True}), ("LSTM", {"layer_norm": True, "coupled": True}),
         ("LSTM", {"proj_size": 2, "bidirectional": True}), ("LSTM", {"zoneout": 0.1}), ("GRU", {}), ("RNN", {}),
         ("GRU", {"recurrent_dropout": 0.2})]
IDS = [f"{kind}{''.join(f'-{k}' for k in kw)}" for kind, kw in CASES]


def make(kind, kw, seed=0):
    torch.manual_seed(seed)
    return getattr(lstmkit, kind)(3, 4, **kw)


def grads_of(module, run, x):
    torch.manual_seed(7)                             # the same dropout and zoneout masks on every path
    out, _ = run(x)
    out.square().sum().backward()
    grads = [p.grad.clone() for p in module.parameters()]
    module.zero_grad()
    return out.detach(), grads


@pytest.mark.parametrize(("kind", "kw"), CASES, ids=IDS)
def test_compile_has_no_graph_break(kind, kw):
    module = make(kind, kw)
    dynamo.reset()
    explain = dynamo.explain(module)(torch.randn(12, 2, 3))
    assert (explain.graph_count, explain.graph_break_count) == (1, 0), explain.break_reasons


@pytest.mark.parametrize(("kind", "kw"), [CASES[1], CASES[3], CASES[5]], ids=[IDS[1], IDS[3], IDS[5]])
def test_compiled_forward_and_backward_equal_eager(kind, kw):
    module = make(kind, kw)
    dynamo.reset()
    compiled = torch.compile(module, backend="aot_eager")   # fake tensors and the registered autograd, no codegen
    x = torch.randn(9, 2, 3)
    (y, g), (y_c, g_c) = grads_of(module, module, x), grads_of(module, compiled, x)
    torch.testing.assert_close(y_c, y)
    for a, b in zip(g_c, g, strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize(("kind", "kw"), [CASES[1], CASES[5]], ids=[IDS[1], IDS[5]])
def test_export_with_a_dynamic_length_computes_another_length(kind, kw):
    module = make(kind, kw).eval()
    steps = torch.export.Dim("T", min=1, max=1000)
    program = torch.export.export(module, (torch.randn(5, 2, 3),), dynamic_shapes=({0: steps},))
    x = torch.randn(9, 2, 3)
    torch.testing.assert_close(program.module()(x)[0], module(x)[0])


def test_export_with_a_fixed_length_refuses_another():
    module = make("LSTM", {"peephole": True}).eval()
    program = torch.export.export(module, (torch.randn(5, 2, 3),))
    with pytest.raises(Exception, match="size"):
        program.module()(torch.randn(9, 2, 3))


@pytest.mark.parametrize(("kind", "kw"), [CASES[1], CASES[3], CASES[5], CASES[6]],
                         ids=[IDS[1], IDS[3], IDS[5], IDS[6]])
def test_jit_trace_computes_another_length_forward_and_backward(kind, kw):
    module = make(kind, kw)
    traced = torch.jit.trace(module, (torch.randn(5, 2, 3),), check_trace=False)
    x = torch.randn(9, 2, 3)
    (y, g), (y_t, g_t) = grads_of(module, module, x), grads_of(module, traced, x)
    assert y_t.shape == y.shape
    torch.testing.assert_close(y_t, y)
    for a, b in zip(g_t, g, strict=True):
        torch.testing.assert_close(a, b)


def test_jit_trace_of_the_reference_loop_refuses_another_length():
    module = make("LSTM", {"backend": "reference"}).eval()
    with torch.no_grad():
        traced = torch.jit.trace(module, (torch.randn(5, 2, 3),), check_trace=False)
        torch.testing.assert_close(traced(torch.randn(5, 2, 3) * 0)[0], module(torch.randn(5, 2, 3) * 0)[0])
        with pytest.raises(RuntimeError, match="traced by torch.jit.trace at T=5"):
            traced(torch.randn(9, 2, 3))


class Net(torch.nn.Module):
    def __init__(self, rnn, cell):
        super().__init__()
        self.rnn, self.cell, self.head = rnn, cell, torch.nn.Linear(4, 1)
        self.cell_gives_h_c = isinstance(cell, lstmkit.LSTMCell)

    def forward(self, x):
        y, _ = self.rnn(x)
        h = self.cell(y[-1])
        return self.head(h[0] if self.cell_gives_h_c else h)


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
def test_fx_traces_lstmkit_modules_as_leaves(kind):
    net = Net(make(kind, {"peephole": True} if kind == "LSTM" else {}), getattr(lstmkit, f"{kind}Cell")(4, 4))
    graph = torch.fx.symbolic_trace(net)
    assert [n.target for n in graph.graph.nodes if n.op == "call_module"] == ["rnn", "cell", "head"]
    x = torch.randn(6, 2, 3)
    torch.testing.assert_close(graph(x), net(x))


def test_fx_tracing_the_module_itself_says_to_trace_its_holder():
    with pytest.raises(TypeError, match="symbolic_trace a model that holds it"):
        torch.fx.symbolic_trace(lstmkit.LSTM(3, 4))


def test_fx_refuses_interventions_it_cannot_record():
    class Holder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn = lstmkit.LSTM(3, 4)

        def forward(self, x):
            return self.rnn(x, interventions=[lstmkit.ablate("c", units=[1])])[0]

    with pytest.raises(TypeError, match="with module.intervene"):
        torch.fx.symbolic_trace(Holder())


@pytest.mark.parametrize(("op", "args"), [
    ("lstm", dict(peephole=True, w_hr=True)), ("lstm", dict(ln=True, zoneout_masks=True)),
    ("lstm", dict(zoneout_p=0.2, records=False)), ("lstm", dict(peephole=True, edits=True)), ("gru", {}),
    ("gru", dict(edits=True)), ("rnn", dict(save=False))])
def test_custom_ops_agree_with_their_fake_and_autograd_registrations(op, args):
    torch.library.opcheck(*_sample(op, **args),
                          test_utils=("test_schema", "test_autograd_registration", "test_faketensor"))


def _sample(op, peephole=False, w_hr=False, ln=False, zoneout_masks=False, zoneout_p=0.0, records=True, save=True,
            edits=False):
    """(op, args) of one small call: T=3, B=2, I=3, H=4 (P=2 with w_hr); edits: one on c (LSTM) or h (GRU, RNN),
    the others None."""
    T, B, I, H = 3, 2, 3, 4
    R = 2 if w_hr else H
    g = torch.Generator().manual_seed(0)

    def t(*shape, grad=save):
        return torch.randn(*shape, generator=g).requires_grad_(grad)

    def edit_lists(n, at, S):
        if not edits:
            return [], []
        keep, value = torch.ones(T, B, S), torch.zeros(T, B, S)
        keep[1:, :, 1], value[1:, :, 1] = 0.0, 0.5            # unit 1 set to 0.5 from step 1 on
        none = torch.empty(0)                                  # a record without an edit (see ops)
        return ([keep if k == at else none for k in range(n)], [value if k == at else none for k in range(n)])

    if op == "lstm":
        masks = ((torch.ones(T, B, R).bernoulli_(0.5), torch.ones(T, B, H).bernoulli_(0.5)) if zoneout_masks
                 else (None, None))
        gammas = (t(4 * H), t(4 * H), t(H), t(H)) if ln else (None,) * 4
        return ops.lstm_forward, (t(T, B, I), t(B, R), t(B, H), t(4 * H, I), t(4 * H, R), t(4 * H),
                                  t(3, H, grad=peephole), t(R, H) if w_hr else None, *gammas, torch.tensor([3, 2]),
                                  None, *masks, zoneout_p, False, save, records, *edit_lists(6, 4, H))
    G = 3 if op == "gru" else 1
    return ops.gru_rnn_forward, (t(T, B, I), t(B, H), t(G * H, I), t(G * H, H), t(G * H), t(G * H), None, None, None,
                                 0.0, ops.KINDS["gru" if op == "gru" else "tanh"], save, True,
                                 *edit_lists(4 if op == "gru" else 2, 3 if op == "gru" else 1, H))


@pytest.mark.parametrize(("op", "args"), [("lstm", dict(peephole=True, w_hr=True, edits=True)),
                                          ("lstm", dict(ln=True, zoneout_masks=True)), ("gru", dict(edits=True)),
                                          ("rnn", {})])
def test_eager_direct_path_equals_the_custom_op_bitwise(op, args, monkeypatch):
    _, inputs = _sample(op, **args)
    leaves = [a for a in inputs if isinstance(a, torch.Tensor) and a.requires_grad]
    outputs = 3 if op == "lstm" else 2                        # y, h_n (, c_n): the differentiable outputs

    def run(recording):
        monkeypatch.setattr(ops, "tracing", lambda x: recording)
        out = (ops.lstm if op == "lstm" else ops.gru_rnn)(*inputs)
        loss = sum((o * torch.linspace(-1, 1, o.numel()).view_as(o)).sum() for o in out[:outputs])
        return type(out[0].grad_fn).__name__, out, torch.autograd.grad(loss, leaves)

    (direct, out, grads), (via_op, out_op, grads_op) = run(False), run(True)
    assert "Direct" in direct and "Direct" not in via_op      # the two paths did run
    assert all(torch.equal(a, b) for a, b in zip(out, out_op, strict=True))
    assert all(torch.equal(a, b) for a, b in zip(grads, grads_op, strict=True))


def test_eager_calls_are_not_taken_for_tracing():
    assert not ops.tracing(torch.ones(1))


def test_compiled_interventions_equal_eager():
    module = make("LSTM", {"peephole": True})
    ablate = [lstmkit.ablate("c", units=[1])]
    dynamo.reset()
    compiled = torch.compile(lambda x: module(x, interventions=ablate), backend="aot_eager")
    x = torch.randn(6, 2, 3)
    (y, g), (y_c, g_c) = grads_of(module, lambda x: module(x, interventions=ablate), x), grads_of(module, compiled, x)
    assert torch.equal(y_c, y) and not torch.equal(y, module(x)[0].detach())    # (the ablation changed y)
    assert all(torch.equal(a, b) for a, b in zip(g_c, g, strict=True))


def test_the_compile_constant_mark_is_the_one_torchs_decorator_sets():
    """lstmkit marks process constants itself (importing torch._dynamo to do it cost ~3 s per `import lstmkit`):
    the mark must stay the one torch.compiler.assume_constant_result sets."""
    def probe():
        return 1

    marked = torch.compiler.assume_constant_result(probe)
    assert getattr(marked, constant.MARK) is True
    assert getattr(constant.constant_under_compile(lambda: 1), constant.MARK) is True


def test_importing_lstmkit_does_not_import_dynamo():
    code = ("import sys, lstmkit, lstmkit.cli, lstmkit.lab; from lstmkit.engines.fused import build; "
            "sys.exit(any(m == 'torch._dynamo' for m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:] or "torch._dynamo was imported"
