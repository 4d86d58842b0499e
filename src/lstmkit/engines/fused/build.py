"""Building and loading the fused engine's C++ (``lstmkit/csrc``), once per CPU and version of the code.

The engine is compiled on first use with :func:`torch.utils.cpp_extension.load` (g++ and ninja; about a minute)
into a build directory named after a hash of the code, the flags and this CPU, and loaded from there on every
later use, with no compiler needed. ``lstmkit build`` does it ahead of time (container images, CI).

Where it lives: ``$LSTMKIT_BUILD_DIR/<name>``, else ``$XDG_CACHE_HOME/lstmkit/<name>`` (``~/.cache/lstmkit``).
Nothing here raises: a missing compiler, a failed build or an unwritable cache is reported by
:func:`unavailable_reason`, and callers decide (``auto`` falls back to the reference engine with one warning).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.machinery
import importlib.util
import os
import platform
import shutil
import warnings
from pathlib import Path
from types import ModuleType

from .constant import constant_under_compile

__all__ = ["BuildNotice", "build_directory", "is_available", "is_built", "load", "module", "unavailable_reason"]

CSRC = Path(__file__).resolve().parent.parent.parent / "csrc"
SOURCES = ("module.cpp", "lstm_layer.cpp", "gru_rnn_layer.cpp")


class BuildNotice(UserWarning):
    """Issued once when a first use has to compile the engine (about a minute)."""


_module: ModuleType | None = None
_reason: str | None = None


@functools.cache
def cpu_fingerprint() -> str:
    """Model name and feature flags of this CPU ('' where /proc/cpuinfo is unreadable)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""
    keep = [line for line in text.splitlines()[:64] if line.startswith(("vendor_id", "model name", "flags"))]
    return "\n".join(dict.fromkeys(keep))


def compiler_flags() -> list[str]:
    """The flags the engine is built with, and why.

    ``-O3 -march=native``: the pointwise pass is compiled for this CPU's widest vectors (16 lanes with AVX-512, 8
    with AVX2). That is safe only because the binary never leaves the CPU it was built for: the build directory's
    name includes a hash of the CPU model and flags, so a cache shared between machines (a network home, a CI
    cache) holds one build per CPU instead of handing one CPU's build to another. Without a CPU fingerprint (no
    /proc/cpuinfo), or off x86-64, plain ``-O3``. ``-fopenmp``: ``at::parallel_for`` is header-inlined OpenMP;
    without it the pointwise pass runs on one thread (it links the libgomp torch has already loaded). No
    ``-ffast-math``: it would reorder layer norm's reductions and break NaN handling. ``LSTMKIT_MARCH`` replaces
    ``native`` (``x86-64-v3`` builds what an AVX2-only CPU would run: 8-lane vectors instead of 16).
    """
    flags = ["-O3", "-fopenmp", "-fno-math-errno", "-fno-trapping-math"]
    march = os.environ.get("LSTMKIT_MARCH", "").strip()
    if march:                           # e.g. x86-64-v3: build as for an AVX2-only CPU (see BENCHMARKS.md)
        if not march.replace("-", "").replace("_", "").isalnum():
            raise RuntimeError(f"LSTMKIT_MARCH (={march!r}) must be a -march value such as 'x86-64-v3'")
        flags.append(f"-march={march}")
    elif cpu_fingerprint() and platform.machine() in ("x86_64", "AMD64"):
        flags.append("-march=native")
    return flags


@functools.cache
def _headers() -> tuple[str, ...]:
    return tuple(sorted(p.name for p in CSRC.glob("*.h")))


@functools.cache
def extension_name() -> str:
    """``lstmkit_fused_<hash>``: the hash covers the code (headers too, which torch's own check does not), the
    flags and the CPU, so a build directory never serves an older engine or another CPU."""
    code = b"".join((CSRC / f).read_bytes() for f in SOURCES + _headers())
    digest = hashlib.sha1((cpu_fingerprint() + " ".join(compiler_flags())).encode() + code).hexdigest()[:10]
    return f"lstmkit_fused_{digest}"


def build_directory() -> Path:
    """Where this CPU's build of this code lives (it may not exist yet)."""
    root = os.environ.get("LSTMKIT_BUILD_DIR")
    if not root:
        cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        root = os.path.join(cache, "lstmkit")
    return Path(root) / extension_name()


def _library() -> Path:
    return build_directory() / f"{extension_name()}.so"


def is_built() -> bool:
    """Whether a build for this CPU and code is on disk (then loading needs no compiler)."""
    return _library().is_file()


def _import_built() -> ModuleType:
    name, path = extension_name(), _library()
    spec = importlib.util.spec_from_file_location(name, path,
                                                  loader=importlib.machinery.ExtensionFileLoader(name, str(path)))
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    lib = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(lib)
    return lib


def _compile() -> ModuleType:
    import torch  # noqa: F401  (the extension links against the libraries torch has loaded)
    from torch.utils import cpp_extension

    cxx = os.environ.get("CXX", "c++")
    if shutil.which(cxx) is None:
        raise RuntimeError(f"no C++ compiler ({cxx!r}) on PATH, and no build for this CPU in {build_directory()}")
    if not cpp_extension.is_ninja_available():
        raise RuntimeError("ninja is not installed (pip install ninja, or lstmkit[fused])")
    directory = build_directory()
    directory.mkdir(parents=True, exist_ok=True)
    warnings.warn(f"lstmkit: compiling the fused engine for this CPU (about a minute, once) into {directory}",
                  BuildNotice, stacklevel=4)
    return cpp_extension.load(name=extension_name(), sources=[str(CSRC / s) for s in SOURCES],
                              extra_include_paths=[str(CSRC)], extra_cflags=compiler_flags(),
                              extra_ldflags=["-fopenmp"], build_directory=str(directory), verbose=False)


def load() -> ModuleType | None:
    """The engine's module, built first if needed; None (and :func:`unavailable_reason` says why) when it cannot
    be had. Tried once per process."""
    global _module, _reason
    if _module is not None or _reason is not None:
        return _module
    try:
        _module = _import_built() if is_built() else _compile()
    except Exception as e:  # a missing compiler, a failed build, a read-only cache: report, never raise
        _reason = f"the fused engine could not be built: {type(e).__name__}: {e}"
        _module = None
    return _module


def module() -> ModuleType:
    """The loaded engine; raises RuntimeError with the reason where it cannot be built."""
    lib = load()
    if lib is None:
        raise RuntimeError(unavailable_reason())
    return lib


# Both are constants of a process (the engine is tried once). Under torch.compile they run while tracing, outside
# the graph, and their values are constants of it: loading the engine (pathlib, importlib) cannot be traced, and the
# first call in a process may be a compiled one.
@constant_under_compile
def is_available() -> bool:
    """Whether the compiled engine can run here (compiles it on the first call; never raises)."""
    return load() is not None


@constant_under_compile
def unavailable_reason() -> str:
    """Why :func:`is_available` is False ('' when it is True)."""
    load()
    return _reason or ""
