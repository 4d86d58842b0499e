"""Without a compiler: auto falls back to the reference engine with one warning; fused raises and says why."""

import warnings

import pytest
import torch

import lstmkit
from lstmkit.engines import policy
from lstmkit.engines.fused import build


@pytest.fixture
def no_compiler(monkeypatch):
    """The state the loader is in after a build failed for want of a compiler."""
    monkeypatch.setattr(build, "_module", None)
    monkeypatch.setattr(build, "_reason", "the fused engine could not be built: no C++ compiler found (g++)")
    monkeypatch.setattr(policy, "_warned", set())


def test_auto_falls_back_to_reference_with_one_warning(no_compiler):
    lstm = lstmkit.LSTM(3, 4, peephole=True)
    x = torch.randn(5, 2, 3)
    with pytest.warns(RuntimeWarning, match="no C\\+\\+ compiler found"):
        out = lstm(x)[0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = lstm(x)[0]
    torch.testing.assert_close(out, again)
    assert lstm.engine_for(x) == "reference"


def test_fused_backend_raises_without_a_compiler(no_compiler):
    with pytest.raises(lstmkit.InputError, match="backend='fused' cannot run this module: .*no C\\+\\+ compiler"):
        lstmkit.LSTM(3, 4, backend="fused")


def test_plain_lstm_needs_no_compiler(no_compiler):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert lstmkit.LSTM(3, 4).engine_for(torch.randn(5, 2, 3)) == "torch"


def test_an_engine_already_built_loads_without_a_compiler(monkeypatch):
    if not build.is_available():                # builds it here when it can (a fresh machine has no build yet)
        pytest.skip(f"the engine cannot be built here: {build.unavailable_reason()}")
    monkeypatch.setattr(build, "_module", None)
    monkeypatch.setattr(build, "_reason", None)
    monkeypatch.setenv("CXX", "no-such-compiler")
    monkeypatch.setenv("PATH", "/nonexistent")
    assert build.is_available(), build.unavailable_reason()
    assert lstmkit.LSTM(3, 4, peephole=True, backend="fused")(torch.randn(5, 2, 3))[0].shape == (5, 2, 4)


def test_without_a_build_or_a_compiler_the_reason_says_both(monkeypatch, tmp_path):
    monkeypatch.setattr(build, "_module", None)
    monkeypatch.setattr(build, "_reason", None)
    monkeypatch.setenv("LSTMKIT_BUILD_DIR", str(tmp_path))
    monkeypatch.setenv("CXX", "no-such-compiler")
    assert not build.is_available()
    assert "no C++ compiler ('no-such-compiler') on PATH, and no build for this CPU" in build.unavailable_reason()
