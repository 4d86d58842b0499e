"""What a bug report needs (``lstmkit info``) and building the fused engine ahead of time (``lstmkit build``).

Like ``python -m torch.utils.collect_env``: versions, the CPU and the instruction-set flags that decide a path,
threads, the GEMM library and bf16 strategy the engine chose here and why, and the engine's state.
"""

from __future__ import annotations

import os
import platform
import sys

import torch

from .engines.fused import build, cpu


def report() -> list[tuple[str, str]]:
    """(label, value) rows; never raises (a part that cannot be found says why)."""
    from . import __version__

    caps = cpu.capabilities()
    rows = [
        ("lstmkit", __version__),
        ("torch", f"{torch.__version__} (oneDNN {'yes' if torch.backends.mkldnn.is_available() else 'no'}, "
                  f"MKL {'yes' if torch.backends.mkl.is_available() else 'no'})"),
        ("Python", f"{platform.python_version()} ({sys.executable})"),
        ("CPU", f"{caps.model or 'unknown'} ({platform.machine()})"),
        ("CPU flags", " ".join(caps.flags) or "none of " + ", ".join(cpu.FLAGS)),
        ("torch CPU capability", caps.torch_capability),
        ("oneDNN bf16", "yes" if not caps.onednn_bf16 else f"no: {caps.onednn_bf16}"),
        ("torch.nn bf16 kernels", ", ".join(f"{k} {'yes' if not cpu.torch_kernel_runs_bf16(k) else 'no'}"
                                            for k in ("lstm", "gru", "rnn_tanh"))),
        ("threads", str(torch.get_num_threads())),
    ]
    names = ("ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS", "ATEN_CPU_CAPABILITY", "LSTMKIT_GEMM", "LSTMKIT_BF16",
             "LSTMKIT_CACHE_MB", "LSTMKIT_MARCH")
    isa = [f"{k}={os.environ[k]}" for k in names if k in os.environ]
    if isa:
        rows.append(("environment", " ".join(isa)))
    try:
        choice = cpu.choice()
        rows += [("GEMM library", f"{choice.gemm}: {choice.gemm_why}"),
                 (f"  small (< {cpu.SMALL_PRODUCT} MACs/step)", f"{choice.gemm_small}: {choice.gemm_small_why}"),
                 ("bf16 strategy", f"{choice.bf16}: {choice.bf16_why}")]
    except ValueError as e:                                  # a bad LSTMKIT_GEMM / LSTMKIT_BF16
        rows.append(("GEMM library", f"error: {e}"))
    rows.append(("fused engine", _engine_state()))
    return rows


def _engine_state() -> str:
    where = build.build_directory()
    if not build.is_built():
        return f"not built yet for this CPU (would build into {where}; `lstmkit build` does it now)"
    if not build.is_available():
        return f"built in {where}, but cannot load: {build.unavailable_reason()}"
    from .engines import fused

    cap = os.environ.get("LSTMKIT_CACHE_MB", "1024")
    return f"built in {where}; buffer cache holds {fused.cached_bytes() / 2**20:.0f} MB (cap {cap} MB)"


def format_report(rows: list[tuple[str, str]]) -> str:
    width = max(len(label) for label, _ in rows)
    return "\n".join(f"{label:<{width}}  {value}" for label, value in rows)


def build_engine() -> str:
    """Build (or find) the fused engine for this CPU and measure its GEMM and bf16 choices afresh (run it on a
    quiet machine: the choices are saved with the build for every later process); returns where the build is.
    Raises RuntimeError saying why it cannot be built."""
    build.module()
    cpu.remeasure()
    return str(build.build_directory())
