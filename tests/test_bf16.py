"""bf16 autocast on every CPU: every module returns torch.nn's dtypes and values within bf16 rounding of float32,
whether this CPU has bf16 instructions or not (``make test`` also runs this file with oneDNN and MKL held to
AVX2). The comparison with torch.nn under autocast, which skips only where torch.nn itself cannot run here and
says so, is tests/test_fused_engine_gru_rnn.py::test_under_autocast_outputs_and_records_have_torch_nn_dtypes."""

import pytest
import torch

import lstmkit
from lstmkit.engines import fused
from lstmkit.engines.fused import cpu

pytestmark = pytest.mark.skipif(not fused.is_available(), reason=f"no compiled engine: {fused.unavailable_reason()}")

BF16 = {"device_type": "cpu", "dtype": torch.bfloat16}
LSTM_OPTIONS = [{}, {"peephole": True}, {"layer_norm": True}, {"coupled": True}, {"proj_size": 3},
                {"zoneout": 0.1}, {"recurrent_dropout": 0.2}, {"peephole": True, "layer_norm": True, "coupled": True,
                                                             "bidirectional": True}]
KINDS = [("LSTM", kw) for kw in LSTM_OPTIONS] + [("GRU", {}), ("GRU", {"zoneout": 0.1}), ("RNN", {}),
                                                  ("RNN", {"nonlinearity": "relu", "bidirectional": True})]


def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).norm() / b.float().norm().clamp_min(1e-12))


def run(module, x, seed=1, autocast=False):
    """Output, final states and the input's gradient of one call (the same random masks for every call)."""
    x = x.detach().requires_grad_()
    torch.manual_seed(seed)
    with torch.autocast(**BF16, enabled=autocast):
        out, state = module(x)
    states = state if isinstance(state, tuple) else (state,)
    (grad,) = torch.autograd.grad(out.float().sum(), x)
    return out, states, grad


@pytest.mark.parametrize(("kind", "kw"), KINDS, ids=[f"{k}-{'-'.join(kw) or 'plain'}" for k, kw in KINDS])
def test_every_module_runs_under_bf16_autocast_within_bf16_rounding(kind, kw):
    torch.manual_seed(0)
    module = getattr(lstmkit, kind)(8, 6, num_layers=2, **kw)
    x = torch.randn(12, 3, 8)
    want, want_states, want_grad = run(module, x)
    got, got_states, got_grad = run(module, x, autocast=True)
    dtype = torch.float32 if kind == "GRU" else torch.bfloat16       # torch has no CPU autocast rule for the GRU
    assert got.dtype == dtype and all(s.dtype == dtype for s in got_states)
    # bf16 keeps 8 bits of mantissa (relative rounding 2^-9 = 0.2%); two layers of 12 steps of bf16 GEMMs stay
    # within a few percent of float32, which is what torch.nn's own bf16 LSTM does at this size.
    assert relative(got, want) < 3e-2
    for a, b in zip(got_states, want_states, strict=True):
        assert relative(a, b) < 3e-2
    assert relative(got_grad, want_grad) < 5e-2


@pytest.mark.parametrize("kind", ["LSTM", "GRU", "RNN"])
def test_traces_under_bf16_autocast_have_the_output_dtype(kind):
    torch.manual_seed(0)
    module = getattr(lstmkit, kind)(8, 6, num_layers=2)
    x = torch.randn(12, 3, 8)
    with torch.no_grad():
        want = module.trace(x)
        with torch.autocast(**BF16):
            got = module.trace(x)
    for (_, _, rec_got), (_, _, rec_want) in zip(got, want, strict=True):
        for a, b in zip(rec_got, rec_want, strict=True):
            assert a.dtype == got.output.dtype
            assert relative(a, b) < 3e-2


@pytest.mark.parametrize("kind", ["LSTMCell", "GRUCell", "RNNCell"])
def test_cells_run_under_bf16_autocast(kind):
    torch.manual_seed(0)
    ours = getattr(lstmkit, kind)(8, 6)
    x = torch.randn(3, 8)
    want = ours(x)
    with torch.autocast(**BF16):
        got = ours(x)
    for a, b in zip(got if isinstance(got, tuple) else (got,), want if isinstance(want, tuple) else (want,),
                    strict=True):
        assert relative(a, b) < 3e-2


@pytest.fixture
def no_bf16_lstm_kernel(monkeypatch):
    """This CPU as an AVX2-only one looks to lstmkit: torch's bf16 LSTM and RNN kernels cannot be created."""
    message = "could not create a primitive descriptor for the LSTM forward propagation primitive"
    monkeypatch.setattr(cpu, "torch_kernel_runs_bf16", lambda kernel: message if kernel != "gru" else "")


@pytest.mark.parametrize("kind", ["LSTM", "RNN"])
def test_auto_sends_bf16_calls_torch_cannot_run_to_the_fused_engine(kind, no_bf16_lstm_kernel):
    module = getattr(lstmkit, kind)(8, 6)
    x = torch.randn(3, 3, 8)                              # short: auto would take torch's kernel for speed
    assert module.engine_for(x) == "torch"
    with torch.autocast(**BF16):
        assert module.engine_for(x) == "fused"
        out = module(x)[0]
    assert out.dtype == torch.bfloat16


def test_torch_backend_under_bf16_names_the_cpu_limit_and_the_way_out(no_bf16_lstm_kernel):
    lstm = lstmkit.LSTM(8, 6, backend="torch")
    with torch.autocast(**BF16), pytest.raises(lstmkit.InputError,
                                                match=r"backend='torch' cannot run this call: .*bf16 .*this CPU"
                                                      r".*use backend='auto'"):
        lstm(torch.randn(12, 3, 8))


def test_the_bf16_strategy_never_needs_what_the_cpu_lacks():
    caps, choice = cpu.capabilities(), cpu.choice()
    if caps.onednn_bf16:                               # no bf16 primitive here: everything runs as float32
        assert choice.bf16 == "fp32" and cpu.gemm_id(torch.bfloat16, 1 << 30) == 0
    assert choice.bf16 in ("bf16", "fp32") and {choice.gemm, choice.gemm_small} <= {"mkl", "onednn"}
    assert choice.gemm_why and choice.bf16_why


def test_bad_overrides_name_the_variable(monkeypatch):
    monkeypatch.setenv("LSTMKIT_GEMM", "blas")
    with pytest.raises(lstmkit.InputError, match="LSTMKIT_GEMM .*'blas'.*'mkl', 'onednn'"):
        cpu._gemm_choice(cpu.capabilities(), cpu.SMALL_SHAPE)
