"""``lstmkit bench``: lstmkit against torch.nn.LSTM (GRU, RNN) and a naive per-step Python cell, on recognised shapes.

    lstmkit bench [--quick] [--repeats N] [--shapes NAME ...] [--json PATH] [--no-memory]
    lstmkit bench --lab [--repeats N] [--shapes lab-... ...] [--json PATH]
    python -m lstmkit.bench ...   (the same)

Every row of one shape runs in this one process, interleaved (one timing of each row per round, rounds
repeated), and the median is reported; ratios are to ``torch.nn.LSTM`` at the same shape, mode and dtype in the
same run (``proj`` rows to torch.nn with the same ``proj_size``, GRU and RNN rows to ``torch.nn.GRU``, ``RNN``).
The fp32 GEMM rate is measured in the same run, so each row also shows its GFLOP/s as a fraction of it.
``--lab`` runs the memory lab's small shapes (``LAB_SHAPES``: H = 32-128, per-step products of 16k-2M
multiply-adds) in fp32 once with one thread and once with two; there each row's %peak is of the fp32 FMA peak
measured in the same run on as many threads (``fma_rate``), the limit small products are held to.
"infer" is a forward under ``torch.no_grad()`` in eval mode; "train" is forward + backward of ``output.sum()`` in
training mode. bf16 rows run under ``torch.autocast("cpu", dtype=torch.bfloat16)``, torch.nn's included.
A row this machine cannot run (oneDNN has no bf16 LSTM on a CPU without AVX-512 bf16 instructions, say) says
"n/a" and why, in the table and in the JSON (``"na"``), and so does a ratio to it; the other rows run as usual.

What is measured is in ``rows.py`` (shapes, rows, baselines, flops) and ``naive.py``; ``timing.py`` times a
shape's rows, ``memory.py`` measures peak memory, ``report.py`` prints and writes them, ``command.py`` holds the
options and the run.
"""

from __future__ import annotations

import argparse
import sys

from .command import add_arguments, run
from .memory import memory_rows, peak_memory_mb
from .naive import NaiveLSTM
from .report import format_memory, format_table, machine
from .rows import (
    GATES,
    INFERENCE_ONLY,
    LAB_ROWS,
    LAB_SHAPES,
    LAB_THREADS,
    QUICK_ROWS,
    QUICK_SHAPES,
    ROWS,
    SHAPES,
    Row,
    baseline,
    family,
    rnn_flops,
)
from .timing import bench_shape, fma_rate, gemm_rate, median_time


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="lstmkit bench", description=__doc__.split("\n\n")[0])
    add_arguments(p)
    args = p.parse_args(argv)
    try:
        return run(args)
    except ValueError as err:  # a --json path that cannot be written, found before any measurement
        print(f"lstmkit bench: error: {err}", file=sys.stderr)
        return 2


__all__ = ["GATES", "INFERENCE_ONLY", "LAB_ROWS", "LAB_SHAPES", "LAB_THREADS", "QUICK_ROWS", "QUICK_SHAPES", "ROWS",
           "SHAPES", "NaiveLSTM", "Row", "add_arguments", "baseline", "bench_shape", "family", "fma_rate",
           "format_memory", "format_table", "gemm_rate", "machine", "main", "median_time", "memory_rows",
           "peak_memory_mb", "rnn_flops", "run"]
