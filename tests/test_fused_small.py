"""The fused engine's resident-weight products (csrc/small_gemm.h) at the memory lab's small shapes: the same
results as the reference engine and as the library path, for every option, and bitwise repeatable."""

import pytest
import torch

import lstmkit
from lstmkit.engines import fused
from lstmkit.engines.fused import cpu
from parity import assert_close_or_unused, make_input, make_states, run_and_grads

pytestmark = pytest.mark.skipif(not fused.is_available(), reason=f"no compiled engine: {fused.unavailable_reason()}")

RESIDENT, LIBRARY = str(1 << 40), "0"   # LSTMKIT_RESIDENT_MACS: every per-step product resident, or none

# B = 9 and odd widths: row blocks of 4 with a tail of 1, column panels with a partial last vector.
T, B, I, H = 7, 9, 5, 21
LSTM_OPTIONS = {
    "plain": {},
    "peephole": {"peephole": True},
    "coupled": {"coupled": True},
    "layer_norm": {"layer_norm": True},
    "proj": {"proj_size": 13},
    "recurrent_dropout": {"recurrent_dropout": 0.3},
    "zoneout": {"zoneout": 0.2},
    "two layers, bidirectional": {"num_layers": 2, "bidirectional": True},
}


def _run(kind, kw, dtype, form, training, backend, monkeypatch, resident):
    monkeypatch.setenv("LSTMKIT_RESIDENT_MACS", resident)
    torch.manual_seed(0)
    module = getattr(lstmkit, kind)(I, H, **kw, dtype=dtype, backend=backend).train(training)
    x = make_input(form, T, B, I, False, dtype)
    hx = make_states(kind, module, form, B, dtype)
    torch.manual_seed(9)                           # the same dropout and zoneout masks for every run
    out, grads = run_and_grads(module, x, hx)
    return out + list(grads)


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.float64, 1e-10)])
@pytest.mark.parametrize("option", LSTM_OPTIONS)
def test_resident_lstm_matches_reference(option, dtype, tol, monkeypatch):
    kw = LSTM_OPTIONS[option]
    tol = 1e-4 if option == "layer_norm" and dtype == torch.float32 else tol   # see test_fused_engine.py
    for form, training in (("batched", True), ("packed_unsorted", False)):
        want = _run("LSTM", kw, dtype, form, training, "reference", monkeypatch, RESIDENT)
        got = _run("LSTM", kw, dtype, form, training, "fused", monkeypatch, RESIDENT)
        assert_close_or_unused(got, want, tol)


@pytest.mark.parametrize("dtype,tol", [(torch.float32, 1e-5), (torch.float64, 1e-10)])
@pytest.mark.parametrize("kind,kw", [("GRU", {}), ("GRU", {"zoneout": 0.2}), ("GRU", {"recurrent_dropout": 0.3}),
                                     ("RNN", {}), ("RNN", {"nonlinearity": "relu"}), ("RNN", {"zoneout": 0.2})])
def test_resident_gru_and_rnn_match_reference(kind, kw, dtype, tol, monkeypatch):
    for form, training in (("batched", True), ("packed", False)):
        want = _run(kind, kw, dtype, form, training, "reference", monkeypatch, RESIDENT)
        got = _run(kind, kw, dtype, form, training, "fused", monkeypatch, RESIDENT)
        assert_close_or_unused(got, want, tol)


@pytest.mark.parametrize("kind,kw", [("LSTM", {"peephole": True, "proj_size": 8}), ("GRU", {}), ("RNN", {})])
def test_resident_and_library_products_agree(kind, kw, monkeypatch):
    got = _run(kind, kw, torch.float64, "batched", True, "fused", monkeypatch, RESIDENT)
    want = _run(kind, kw, torch.float64, "batched", True, "fused", monkeypatch, LIBRARY)
    assert_close_or_unused(got, want, 1e-12)


def test_resident_traces_equal_reference_traces(monkeypatch):
    monkeypatch.setenv("LSTMKIT_RESIDENT_MACS", RESIDENT)
    torch.manual_seed(0)
    fast = lstmkit.LSTM(I, H, peephole=True, backend="fused", dtype=torch.float64)
    slow = lstmkit.LSTM(I, H, peephole=True, backend="reference", dtype=torch.float64)
    slow.load_state_dict(fast.state_dict())
    x = torch.randn(T, B, I, dtype=torch.float64)
    with torch.no_grad():
        a, b = fast.trace(x), slow.trace(x)
    for (_, _, ra), (_, _, rb) in zip(a, b, strict=True):
        assert set(ra._fields) >= set("ifgoch")
        for name in ra._fields:
            torch.testing.assert_close(getattr(ra, name), getattr(rb, name), atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize("kind", ["LSTM", "GRU"])
def test_resident_results_are_bitwise_the_same_on_every_run_and_thread_count(kind, monkeypatch):
    monkeypatch.setenv("LSTMKIT_RESIDENT_MACS", RESIDENT)
    threads = torch.get_num_threads()
    runs = []
    try:
        for n in (1, 2, 2):
            torch.set_num_threads(n)
            torch.manual_seed(0)
            module = getattr(lstmkit, kind)(I, H, backend="fused", recurrent_dropout=0.3)
            x = torch.randn(30, 24, I)                # 24 rows: split between two threads
            torch.manual_seed(9)
            out, grads = run_and_grads(module, x, None)
            runs.append(out + [g for g in grads if g is not None])
    finally:
        torch.set_num_threads(threads)
    for other in runs[1:]:
        assert all(torch.equal(a, b) for a, b in zip(runs[0], other, strict=True))


def test_resident_products_cover_small_fp32_and_fp64_steps_only(monkeypatch):
    monkeypatch.delenv("LSTMKIT_RESIDENT_MACS", raising=False)
    assert cpu.gemm_id(torch.float32, cpu.RESIDENT_PRODUCT) == 2
    assert cpu.gemm_id(torch.float64, 32 * 32 * 128) == 2
    assert cpu.gemm_id(torch.float32, cpu.RESIDENT_PRODUCT + 1) in (0, 1)
    assert cpu.gemm_id(torch.bfloat16, 1024) in (0, 1)   # bf16 keeps the library path (widened to fp32)
    monkeypatch.setenv("LSTMKIT_RESIDENT_MACS", "0")
    assert cpu.gemm_id(torch.float32, 1024) in (0, 1)
    monkeypatch.setenv("LSTMKIT_RESIDENT_MACS", "lots")
    with pytest.raises(ValueError, match="LSTMKIT_RESIDENT_MACS"):
        cpu.gemm_id(torch.float32, 1024)
