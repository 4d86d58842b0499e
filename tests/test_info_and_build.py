"""`lstmkit info` and `lstmkit build`, and the one-line notice of a first build."""

import os
import subprocess
import sys
import types

import pytest

import lstmkit
from lstmkit.cli import main
from lstmkit.engines.fused import build


def test_info_names_versions_cpu_and_the_engines_choices(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    for label in ("lstmkit", "torch", "Python", "CPU flags", "threads", "GEMM library", "bf16 strategy",
                  "fused engine"):
        assert any(line.startswith(label) for line in out.splitlines()), label
    assert lstmkit.__version__ in out


def test_info_on_an_avx2_cpu_says_onednn_has_no_bf16_and_why():
    env = {**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}
    out = subprocess.run([sys.executable, "-m", "lstmkit", "info"], env=env, capture_output=True, text=True,
                         check=True).stdout
    assert "oneDNN bf16" in out and "no: could not create a primitive descriptor" in out
    assert "bf16 strategy                  fp32: oneDNN cannot run bf16 GEMMs here" in out


@pytest.mark.skipif(not build.is_available(), reason=f"fused engine: {build.unavailable_reason()}")
def test_build_says_where_the_engine_is(capsys):
    assert main(["build"]) == 0
    assert str(build.build_directory()) in capsys.readouterr().out


def test_build_without_a_compiler_says_why_and_fails(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(build, "_module", None)
    monkeypatch.setattr(build, "_reason", None)
    monkeypatch.setenv("LSTMKIT_BUILD_DIR", str(tmp_path))
    monkeypatch.setenv("CXX", "no-such-compiler")
    assert main(["build"]) == 1
    assert "no C++ compiler ('no-such-compiler')" in capsys.readouterr().err


def test_a_first_build_says_so_in_one_warning(monkeypatch, tmp_path):
    from torch.utils import cpp_extension

    monkeypatch.setattr(build, "_module", None)
    monkeypatch.setattr(build, "_reason", None)
    monkeypatch.setenv("LSTMKIT_BUILD_DIR", str(tmp_path))
    monkeypatch.setattr(cpp_extension, "is_ninja_available", lambda: True)
    monkeypatch.setattr(cpp_extension, "load", lambda **kw: types.SimpleNamespace(name=kw["name"]))
    with pytest.warns(build.BuildNotice, match=r"compiling the fused engine for this CPU \(about a minute"):
        assert build.is_available()
