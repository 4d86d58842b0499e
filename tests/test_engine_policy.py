"""The engine policy (lstmkit.engines.choose): one decision for sequence and cell modules, explicit backends
that raise with the reason, and auto's order of preference."""

import pytest
import torch

import lstmkit
from lstmkit.cells import Cell, GRUCellMath, LSTMCellMath, RNNCellMath
from lstmkit.engines import BACKENDS, ENGINES, RunConfig, choose, fused, policy, reference, torch_kernel
from lstmkit.engines.fused import build

needs_fused = pytest.mark.skipif(not fused.is_available(), reason=f"fused engine: {fused.unavailable_reason()}")
X = torch.randn(5, 2, 3)
SEQ = RunConfig(num_layers=1, bidirectional=False)


def test_every_engine_has_the_same_three_names():
    for name, engine in ENGINES.items():
        assert name == engine.NAME
        assert callable(engine.why_not) and callable(engine.run)
    assert BACKENDS == ("auto", "torch", "fused", "reference")


def test_the_reference_serves_everything():
    for cell in (LSTMCellMath(4, peephole=True), GRUCellMath(4), RNNCellMath(4)):
        assert reference.why_not(cell, SEQ, X, trace=True) is None


def test_plain_lstm_takes_torchs_kernel():
    assert choose("auto", LSTMCellMath(4), SEQ, X, trace=False) is torch_kernel


@needs_fused
@pytest.mark.parametrize("cell", [LSTMCellMath(4, peephole=True), LSTMCellMath(4, proj_size=2), GRUCellMath(4)],
                         ids=["variant", "proj_size", "gru"])
def test_variants_proj_size_and_the_gru_take_the_fused_engine(cell):
    assert choose("auto", cell, SEQ, X, trace=False) is fused


@needs_fused
def test_traces_without_grad_take_the_fused_engine_and_with_grad_do_not():
    cell = LSTMCellMath(4)
    with torch.no_grad():
        assert choose("auto", cell, SEQ, X, trace=True) is fused
    with torch.enable_grad():
        assert choose("auto", cell, SEQ, X, trace=True) is torch_kernel
        assert choose("auto", LSTMCellMath(4, layer_norm=True), SEQ, X, trace=True) is reference


def test_training_recurrent_dropout_leaves_torchs_kernel_and_eval_does_not():
    cell = LSTMCellMath(4)
    train = RunConfig(1, False, training=True, recurrent_dropout=0.3)
    evaluate = RunConfig(1, False, training=False, recurrent_dropout=0.3)
    assert torch_kernel.why_not(cell, train, X) is not None
    assert torch_kernel.why_not(cell, evaluate, X) is None


def test_cell_modules_never_take_the_fused_engine():
    step = RunConfig(1, False, single_step=True)
    assert "single steps" in fused.why_not(GRUCellMath(4), step, X[0])
    assert choose("auto", GRUCellMath(4), step, X[0], trace=False) is torch_kernel
    assert lstmkit.GRUCell(3, 4, zoneout=0.1).backend == "auto"


def test_an_explicit_backend_that_cannot_serve_raises_with_the_reason_and_the_way_out():
    with pytest.raises(lstmkit.InputError, match="backend='torch' cannot run this call: .*no fused kernel.*"
                                                 "use backend='auto'"):
        choose("torch", LSTMCellMath(4, coupled=True), SEQ, X, trace=False)


@needs_fused
def test_fused_backend_refuses_differentiable_traces():
    lstm = lstmkit.LSTM(3, 4, backend="fused")
    with torch.enable_grad(), pytest.raises(lstmkit.InputError, match="records carry no gradient"):
        lstm.trace(X)


def test_a_missing_engine_warns_once_and_falls_back(monkeypatch):
    monkeypatch.setattr(build, "_module", None)
    monkeypatch.setattr(build, "_reason", "the fused engine could not be built: no compiler")
    monkeypatch.setattr(policy, "_warned", set())
    with pytest.warns(RuntimeWarning, match="no compiler"):
        assert choose("auto", LSTMCellMath(4, peephole=True), SEQ, X, trace=False) is reference


def test_a_custom_cell_runs_on_the_reference():
    class Leaky(Cell):
        def step(self, xw, state, w):
            h = 0.5 * state[0] + 0.5 * torch.tanh(xw + w.hh(state[0]))
            return (h,), (h,)

    assert choose("auto", Leaky(4), SEQ, X, trace=False) is reference


@needs_fused
def test_short_gru_and_small_proj_calls_stay_on_torchs_kernel_where_the_fused_call_cost_does_not_pay():
    gru, proj = GRUCellMath(32), LSTMCellMath(64, proj_size=32)
    with torch.no_grad():
        assert choose("auto", gru, SEQ, X, trace=False, steps=1, batch=1) is torch_kernel
        assert choose("auto", gru, SEQ, X, trace=False, steps=64, batch=8) is fused
        assert choose("auto", proj, SEQ, X, trace=False, steps=16, batch=8) is torch_kernel   # 0.26M MACs/step
        assert choose("auto", proj, SEQ, X, trace=False, steps=64, batch=8) is fused          # long enough
        assert choose("auto", LSTMCellMath(512, proj_size=256), SEQ, X, trace=False, steps=16, batch=8) is fused
        assert choose("auto", gru, SEQ, X, trace=True, steps=1, batch=1) is fused   # traces: fused at any length
    with torch.enable_grad():
        assert choose("auto", gru, SEQ, X, trace=False, steps=4, batch=1) is fused
        assert choose("auto", proj, SEQ, X, trace=False, steps=16, batch=8) is fused


def test_the_step_bound_can_be_set_and_a_bad_one_is_named(monkeypatch):
    monkeypatch.setenv("LSTMKIT_FUSED_MIN_STEPS", "100")
    with torch.no_grad():
        assert not policy.fused_pays(GRUCellMath(32), steps=64, batch=8)
    monkeypatch.setenv("LSTMKIT_FUSED_MIN_STEPS", "many")
    with pytest.raises(lstmkit.InputError, match="LSTMKIT_FUSED_MIN_STEPS"):
        policy.fused_pays(GRUCellMath(32), steps=64, batch=8)


@needs_fused
def test_long_small_plain_lstm_training_takes_the_fused_engine_and_inference_does_not(monkeypatch):
    for name in ("LSTMKIT_FUSED_LSTM_STEPS", "LSTMKIT_FUSED_LSTM_ROWS", "LSTMKIT_RESIDENT_MACS"):
        monkeypatch.delenv(name, raising=False)
    lab, big = LSTMCellMath(64), LSTMCellMath(1024)
    steps = fused.engine.LSTM_MIN_STEPS
    few = 4                                                 # batch rows: under LSTM_MIN_ROWS on any thread count
    with torch.enable_grad():
        assert choose("auto", lab, SEQ, X, trace=False, steps=steps, batch=few) is fused
        assert choose("auto", lab, SEQ, X, trace=False, steps=steps - 1, batch=few) is torch_kernel
        assert choose("auto", big, SEQ, X, trace=False, steps=steps, batch=64) is torch_kernel  # not resident
        with torch.autocast("cpu", dtype=torch.bfloat16):   # not for speed (no resident bf16 products)...
            bf16_here = fused.cpu.torch_kernel_runs_bf16("lstm") == ""   # ...only where torch's cannot run bf16
            assert choose("auto", lab, SEQ, X, trace=False, steps=steps, batch=few) is (
                torch_kernel if bf16_here else fused)
    with torch.no_grad():
        assert choose("auto", lab, SEQ, X, trace=False, steps=steps, batch=few) is torch_kernel


@needs_fused
@pytest.mark.parametrize("threads", [1, 2])
def test_plain_lstm_with_enough_batch_rows_per_thread_takes_the_fused_engine(monkeypatch, threads):
    for name in ("LSTMKIT_FUSED_LSTM_STEPS", "LSTMKIT_FUSED_LSTM_ROWS", "LSTMKIT_RESIDENT_MACS"):
        monkeypatch.delenv(name, raising=False)
    rows = fused.engine.LSTM_MIN_ROWS
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(threads)
        for grad in (torch.no_grad, torch.enable_grad):
            with grad():
                assert choose("auto", LSTMCellMath(32), SEQ, X, trace=False, steps=100,
                              batch=rows * threads) is fused
                assert choose("auto", LSTMCellMath(32), SEQ, X, trace=False, steps=100,
                              batch=rows * threads - 1) is torch_kernel
                assert choose("auto", LSTMCellMath(1024), SEQ, X, trace=False, steps=100,
                              batch=rows * threads) is torch_kernel           # not resident
                short = fused.engine.LSTM_ROWS_MIN_STEPS - 1                   # too short for the call cost
                assert choose("auto", LSTMCellMath(32), SEQ, X, trace=False, steps=short,
                              batch=rows * threads) is torch_kernel
        monkeypatch.setenv("LSTMKIT_FUSED_LSTM_ROWS", "1")
        with torch.no_grad():
            assert choose("auto", LSTMCellMath(32), SEQ, X, trace=False, steps=100, batch=threads) is fused
        monkeypatch.setenv("LSTMKIT_FUSED_LSTM_ROWS", "few")
        with pytest.raises(lstmkit.InputError, match="LSTMKIT_FUSED_LSTM_ROWS"):
            choose("auto", LSTMCellMath(32), SEQ, X, trace=False, steps=100, batch=threads)
    finally:
        torch.set_num_threads(before)


@needs_fused
def test_the_plain_lstm_step_bound_can_be_set_and_a_bad_one_is_named(monkeypatch):
    monkeypatch.setenv("LSTMKIT_FUSED_LSTM_STEPS", "50")
    with torch.enable_grad():
        assert choose("auto", LSTMCellMath(32), SEQ, X, trace=False, steps=100, batch=4) is fused
        monkeypatch.setenv("LSTMKIT_RESIDENT_MACS", "0")        # no resident products: torch's kernel again
        assert choose("auto", LSTMCellMath(32), SEQ, X, trace=False, steps=100, batch=4) is torch_kernel
        monkeypatch.setenv("LSTMKIT_FUSED_LSTM_STEPS", "soon")
        with pytest.raises(lstmkit.InputError, match="LSTMKIT_FUSED_LSTM_STEPS"):
            choose("auto", LSTMCellMath(32), SEQ, X, trace=False, steps=100, batch=4)


@needs_fused
def test_plain_rnn_takes_the_fused_engine_where_its_step_product_is_resident(monkeypatch):
    monkeypatch.delenv("LSTMKIT_RESIDENT_MACS", raising=False)
    bound = fused.cpu.resident_product()
    for grad in (torch.no_grad, torch.enable_grad):
        with grad():
            assert choose("auto", RNNCellMath(128), SEQ, X, trace=False, steps=100, batch=32) is fused
            assert choose("auto", RNNCellMath(256), SEQ, X, trace=False, steps=100,
                          batch=bound // (256 * 256)) is fused
            assert choose("auto", RNNCellMath(256), SEQ, X, trace=False, steps=100,
                          batch=bound // (256 * 256) + 1) is torch_kernel
    monkeypatch.setenv("LSTMKIT_RESIDENT_MACS", "0")                 # nothing resident: torch's kernel
    with torch.no_grad():
        assert choose("auto", RNNCellMath(128), SEQ, X, trace=False, steps=100, batch=32) is torch_kernel
