"""ONNX export (lstmkit.onnx): what each configuration becomes and that onnxruntime computes what PyTorch does."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import lstmkit

ort = pytest.importorskip("onnxruntime")
lstmkit_onnx = pytest.importorskip("lstmkit.onnx")

TOL = dict(atol=1e-5, rtol=1e-5)


class Model(torch.nn.Module):
    """A user's model: an lstmkit module (optionally over padded sequences with lengths) and a Linear head."""

    def __init__(self, rnn, lengths: bool, states: bool, head: bool = True):
        super().__init__()
        self.rnn, self.lengths, self.states = rnn, lengths, states
        D = 2 if rnn.bidirectional else 1
        self.head = torch.nn.Linear(D * (getattr(rnn, "proj_size", 0) or rnn.hidden_size), 3) if head else None

    def forward(self, x, lengths=None, h0=None, c0=None):
        hx = None if h0 is None else (h0 if c0 is None else (h0, c0))
        if lengths is not None:
            y, state = lstmkit_onnx.padded(self.rnn, x, lengths, hx)
        else:
            y, state = self.rnn(x, hx)
        y = self.head(y) if self.head is not None else y
        return (y, *state) if isinstance(state, tuple) else (y, state)


def _inputs(model, T, B, seed) -> dict:
    """The model's inputs by name, in the exported graph's input order."""
    g = torch.Generator().manual_seed(seed)
    rnn = model.rnn
    x = torch.randn((B, T, rnn.input_size) if rnn.batch_first else (T, B, rnn.input_size), generator=g)
    inputs = {"x": x}
    if model.lengths:
        lengths = torch.randint(1, T + 1, (B,), generator=g)
        lengths[0] = T                                  # one full-length sequence: the padded output keeps T
        inputs["lengths"] = lengths
    if model.states:
        D = 2 if rnn.bidirectional else 1
        for name, size in zip(("h0", "c0"), rnn.cell.state_sizes(), strict=False):
            inputs[name] = torch.randn(rnn.num_layers * D, B, size, generator=g)
    return inputs


def _dynamic(model, inputs: dict) -> dict:
    T, B = torch.export.Dim("T", min=2), torch.export.Dim("B", min=2)
    shapes = {"x": {1: T, 0: B} if model.rnn.batch_first else {0: T, 1: B}, "lengths": {0: B}, "h0": {1: B},
              "c0": {1: B}}
    return {name: shapes[name] for name in inputs}


def export(model, T=5, B=3):
    model.eval()
    inputs = _inputs(model, T, B, seed=0)
    program = lstmkit_onnx.export(model, (), kwargs=inputs, dynamic_shapes=_dynamic(model, inputs))
    return program.model_proto


def run_ort(proto, inputs: dict):
    session = ort.InferenceSession(proto.SerializeToString())
    return session.run(None, {name: t.numpy() for name, t in inputs.items()})


def assert_matches_pytorch(model, proto, T, B, seed=1):
    inputs = _inputs(model, T, B, seed)
    with torch.no_grad():
        expected = model(**inputs)
    got = run_ort(proto, inputs)
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        np.testing.assert_allclose(g, e.numpy(), **TOL)


def ops(proto) -> list[str]:
    return [n.op_type for n in proto.graph.node]


def node(proto, op_type):
    found = [n for n in proto.graph.node if n.op_type == op_type]
    assert found, f"no {op_type} node in {ops(proto)}"
    return found[0]


def attribute(n, name):
    return next(a for a in n.attribute if a.name == name)


@st.composite
def configurations(draw):
    kind = draw(st.sampled_from(["LSTM", "GRU", "RNN"]))
    kw = dict(input_size=draw(st.integers(1, 4)), hidden_size=draw(st.integers(2, 5)),
              num_layers=draw(st.integers(1, 2)), bidirectional=draw(st.booleans()),
              batch_first=draw(st.booleans()), bias=draw(st.booleans()))
    if kind == "LSTM":
        kw.update(peephole=draw(st.booleans()), coupled=draw(st.booleans()), layer_norm=draw(st.booleans()))
        if kw["bias"] and draw(st.booleans()):
            kw["forget_bias"] = 1.0
        if draw(st.booleans()):
            kw["proj_size"] = 1
    if kind == "RNN":
        kw["nonlinearity"] = draw(st.sampled_from(["tanh", "relu"]))
    if draw(st.booleans()):
        kw["zoneout"] = 0.25
    return kind, kw, draw(st.booleans()), draw(st.booleans())


@settings(max_examples=6)      # each example is two exports (seconds each): few, derandomised
@given(configurations())
def test_onnxruntime_matches_pytorch_over_the_configuration_space(config):
    kind, kw, lengths, states = config
    decomposed = kw.get("layer_norm") or kw.get("proj_size") or kw.get("zoneout")
    assume(not (states and kw.get("coupled") and decomposed))   # raises: test_coupled_scan_with_states_raises
    torch.manual_seed(0)
    model = Model(getattr(lstmkit, kind)(**kw), lengths, states)
    proto = export(model)
    # other lengths and batch sizes than the export's example: T and B are dynamic
    assert_matches_pytorch(model, proto, T=7, B=4)
    assert_matches_pytorch(model, proto, T=2, B=2, seed=2)


def test_lstm_variants_are_one_onnx_lstm_node_per_layer():
    model = Model(lstmkit.LSTM(3, 4, num_layers=2, bidirectional=True, peephole=True, coupled=True,
                               forget_bias=1.0), lengths=True, states=True)
    proto = export(model)
    assert ops(proto).count("LSTM") == 2 and "Scan" not in ops(proto) and "Loop" not in ops(proto)
    lstm = node(proto, "LSTM")
    assert attribute(lstm, "input_forget").i == 1
    assert attribute(lstm, "direction").s == b"bidirectional"
    assert lstm.input[4] and lstm.input[7]              # sequence_lens and P are fed
    assert_matches_pytorch(model, proto, T=6, B=3)


def test_gru_resets_after_the_recurrent_product_and_rnn_keeps_its_nonlinearity():
    gru = export(Model(lstmkit.GRU(3, 4), lengths=False, states=False))
    assert attribute(node(gru, "GRU"), "linear_before_reset").i == 1
    rnn = export(Model(lstmkit.RNN(3, 4, nonlinearity="relu"), lengths=False, states=False))
    assert list(attribute(node(rnn, "RNN"), "activations").strings) == [b"Relu"]


@pytest.mark.parametrize("kw, reason", [({"layer_norm": True}, "layer_norm"), ({"proj_size": 2}, "proj_size"),
                                        ({"zoneout": 0.1}, "zoneout")])
def test_what_the_operators_lack_is_a_scan_over_a_dynamic_number_of_steps(kw, reason):
    model = Model(lstmkit.LSTM(3, 4, **kw), lengths=True, states=False)
    assert lstmkit_onnx.graph.native_reason(model.rnn) == reason
    proto = export(model, T=5)
    assert "Scan" in ops(proto) and "LSTM" not in ops(proto)
    assert_matches_pytorch(model, proto, T=9, B=3)          # more steps than the export saw: T is dynamic


def test_a_custom_cell_exports_as_a_scan_over_its_step():
    class Elman(lstmkit.Cell):
        records = ("h",)

        def step(self, xw, state, w):
            h = torch.tanh(xw + w.hh(state[0]))
            return (h,), (h,)

    model = Model(lstmkit.Recurrent(Elman, 3, 4, bidirectional=True), lengths=True, states=True)
    proto = export(model)
    assert "Scan" in ops(proto)
    assert_matches_pytorch(model, proto, T=6, B=3)


def test_chunks_run_in_onnxruntime_with_the_state_carried_equal_one_pytorch_call():
    torch.manual_seed(0)
    model = Model(lstmkit.LSTM(3, 5, num_layers=2, peephole=True), lengths=False, states=True, head=False)
    proto = export(model)
    session = ort.InferenceSession(proto.SerializeToString())
    assert [i.name for i in session.get_inputs()] == ["x", "h0", "c0"]
    x = torch.randn(10, 2, 3)
    with torch.no_grad():
        y, (h_n, c_n) = model.rnn(x)
    h, c = np.zeros((2, 2, 5), np.float32), np.zeros((2, 2, 5), np.float32)
    ys = []
    for chunk in torch.split(x, [1, 4, 2, 3]):
        y_chunk, h, c = session.run(None, {"x": chunk.numpy(), "h0": h, "c0": c})
        ys.append(y_chunk)
    np.testing.assert_allclose(np.concatenate(ys), y.numpy(), **TOL)
    np.testing.assert_allclose(h, h_n.numpy(), **TOL)
    np.testing.assert_allclose(c, c_n.numpy(), **TOL)


def test_the_layer_ops_compute_in_torch_what_the_module_computes():
    torch.manual_seed(0)
    lstm = lstmkit.LSTM(3, 4, bidirectional=True, peephole=True, coupled=True).eval()
    x, lengths = torch.randn(6, 2, 3), torch.tensor([6, 3])
    row = lstm._weights()[0]
    flat = [t for w in row for t in (w.weight_ih, w.weight_hh, w.bias_ih, w.bias_hh, w["weight_peephole"])]
    options = lstmkit_onnx.ops.options("lstm", 4, 2, True, peephole=True, coupled=True)
    h0 = torch.zeros(2, 2, 4)
    with torch.no_grad():
        y, h, c = lstmkit_onnx.ops.lstm_layer(x, flat, h0, h0, lengths, options)
        expected, (h_n, c_n) = lstmkit_onnx.padded(lstm, x, lengths)
    torch.testing.assert_close(y, expected)
    torch.testing.assert_close(h, h_n)
    torch.testing.assert_close(c, c_n)


@pytest.mark.parametrize("option", ["zoneout", "recurrent_dropout", "dropout"])
def test_training_mode_randomness_cannot_be_exported_and_says_which_option(option):
    rnn = lstmkit.LSTM(3, 4, num_layers=2, **{option: 0.25})
    model = Model(rnn, lengths=False, states=False).train()
    with pytest.raises(ValueError, match=f"{option}=0.25 in training mode"):
        lstmkit_onnx.export(model, (torch.randn(5, 2, 3),))


def test_coupled_scan_with_initial_states_raises_naming_the_options():
    model = Model(lstmkit.LSTM(3, 4, coupled=True, layer_norm=True), lengths=False, states=True)
    with pytest.raises(ValueError, match="coupled=True with layer_norm"):
        export(model)
