"""What the benchmark prints and writes: the rows as a table, the memory table, the machine, the JSON file."""

from __future__ import annotations

import contextlib
import json
import platform
from dataclasses import asdict

import torch

import lstmkit

from .rows import Row, baseline


def format_table(rows: list[Row]) -> str:
    """One line per row. A row this machine cannot run shows n/a and why; a ratio to such a row is n/a too. Rows of
    the lab group add ``floor``, the ratio at the whole FMA peak."""
    lab = any(r.threads is not None for r in rows)
    head = (f"{'shape':22} {'dtype':8} {'mode':5} {'row':21} {'engine':9} {'ms':>9} {'ratio':>7} {'GF/s':>7} "
            f"{'%peak':>6}" + (f" {'floor':>6}" if lab else ""))
    lines = [head, "-" * len(head)]
    na = {(r.shape, r.dtype, r.mode, r.row) for r in rows if r.na is not None}
    for r in rows:
        start = f"{r.shape:22} {r.dtype:8} {r.mode:5} {r.row:21} {r.engine:9}"
        if r.na is not None:
            lines.append(f"{start} {'n/a':>9} {'n/a':>7} {'n/a':>7} {'-':>6}  ({r.na})")
            continue
        if r.ratio is not None:
            ratio = f"{r.ratio:7.2f}"
        else:
            ratio = "    n/a" if (r.shape, r.dtype, r.mode, baseline(r.row)) in na else "      -"
        peak = f"{100 * r.of_peak:5.0f}%" if r.of_peak is not None else "     -"
        floor = (f" {r.floor:6.2f}" if r.floor is not None else f" {'-':>6}") if lab else ""
        lines.append(f"{start} {r.ms:9.2f} {ratio} {r.gflops:7.1f} {peak}{floor}")
    return "\n".join(lines)


def format_memory(memory: list[dict]) -> str:
    lines = [f"{'memory (fastrnns B, I, H)':42} {'T':>5} {'MB':>8} {'ratio':>6}"]
    for m in memory:
        ratio = f"{m['ratio']:6.2f}" if m["ratio"] is not None else "     -"
        lines.append(f"{m['what']:42} {m['T']:5d} {m['mb']:8.1f} {ratio}")
    return "\n".join(lines)


def machine() -> dict:
    cpu = platform.processor()
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {"cpu": cpu, "threads": torch.get_num_threads(), "torch": torch.__version__,
            "python": platform.python_version(), "lstmkit": lstmkit.__version__}


def write_json(path: str, info: dict, peak: float | None, repeats: int, rows: list[Row], memory: list[dict],
               stream: list[dict] | None = None, fma_peaks: dict[int, float | None] | None = None) -> None:
    data = {"machine": info, "gemm_gflops": peak, "repeats": repeats, "rows": [asdict(r) for r in rows],
            "memory": memory, "stream": stream or []}
    if fma_peaks is not None:   # the lab group: FMA GFLOP/s by thread count
        data["fma_gflops"] = {str(k): v for k, v in fma_peaks.items()}
    with open(path, "w") as fh:
        json.dump(data, fh, indent=1)
