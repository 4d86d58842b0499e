"""The options of ``lstmkit bench`` and the run they start (``python -m lstmkit.bench`` takes the same)."""

from __future__ import annotations

import argparse
import warnings

import torch

from .._rules import POSITIVE_INT, argument_type, check_output_file
from .memory import memory_rows
from .report import format_memory, format_table, machine, write_json
from .rows import LAB_ROWS, LAB_SHAPES, LAB_THREADS, QUICK_ROWS, QUICK_SHAPES, ROWS, SHAPES
from .streaming import format_stream, stream_rows
from .timing import bench_shape, fma_rate, gemm_rate


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``lstmkit bench`` (shared by ``python -m lstmkit.bench`` and the ``lstmkit`` command)."""
    p.add_argument("--quick", action="store_true", help="two shapes, fewer rows, fp32: under a minute")
    p.add_argument("--repeats", type=argument_type(POSITIVE_INT), default=None,
                   help="timed rounds per row (default 5, quick 3)")
    p.add_argument("--shapes", nargs="+", choices=sorted({**SHAPES, **LAB_SHAPES}), help="run only these shapes")
    p.add_argument("--lab", action="store_true",
                   help="the memory lab's small shapes, fp32, with 1 and 2 threads, %%peak of the FMA peak")
    p.add_argument("--json", metavar="PATH", help="write the rows and the machine description as JSON")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory measurements")
    p.add_argument("--no-stream", action="store_true", help="skip the streaming latency (one step per call)")


def run(args: argparse.Namespace) -> int:
    """Measure and print the tables (``args`` as parsed by :func:`add_arguments`, already validated). A ``--json``
    path that cannot be written is a ValueError before anything is measured."""
    if args.json:
        check_output_file("--json", args.json)
    if args.lab:
        return run_lab(args)
    repeats = args.repeats or (3 if args.quick else 5)
    shapes = args.shapes or (QUICK_SHAPES if args.quick else tuple(SHAPES))
    rows = list(QUICK_ROWS if args.quick else ROWS)
    dtypes = [torch.float32] if args.quick else [torch.float32, torch.bfloat16]
    modes = ["infer", "train"]
    warnings.filterwarnings("ignore", message=".*projections is not supported with oneDNN.*")
    info = machine()
    peak = gemm_rate()
    print(f"# {info['cpu']}, {info['threads']} threads, torch {info['torch']}; fp32 GEMM peak {peak:.0f} GFLOP/s",
          flush=True)
    results = []
    for name in shapes:
        shape_rows = bench_shape(name, rows, dtypes, repeats, peak, modes)
        print(format_table(shape_rows) + "\n", flush=True)
        results.extend(shape_rows)
    memory = [] if args.no_memory else memory_rows(args.quick)
    if memory:
        print(format_memory(memory))
    stream = [] if args.no_stream else stream_rows(repeats)
    if stream:
        print("\n" + format_stream(stream))
    if args.json:
        write_json(args.json, info, peak, repeats, results, memory, stream)
    return 0


def run_lab(args: argparse.Namespace) -> int:
    """The lab group: LAB_SHAPES (or ``--shapes``), LAB_ROWS, fp32, once with each of LAB_THREADS threads. Each
    row's %peak is of the FMA peak measured in this run on as many threads as it ran."""
    repeats = args.repeats or 7
    shapes = args.shapes or tuple(LAB_SHAPES)
    info = machine()
    default_threads = torch.get_num_threads()
    results, peaks = [], {}
    try:
        for threads in LAB_THREADS:
            torch.set_num_threads(threads)
            peak = fma_rate(threads)
            peaks[threads] = peak
            text = f"{peak:.0f} GFLOP/s" if peak else "not measured (no fused engine)"
            print(f"# {info['cpu']}, {threads} thread{'s' * (threads > 1)}, torch {info['torch']}; "
                  f"fp32 FMA peak {text}", flush=True)
            for name in shapes:
                shape_rows = bench_shape(name, list(LAB_ROWS), [torch.float32], repeats, peak, ["infer", "train"],
                                         threads=threads)
                print(format_table(shape_rows) + "\n", flush=True)
                results.extend(shape_rows)
    finally:
        torch.set_num_threads(default_threads)
    if args.json:
        write_json(args.json, info, None, repeats, results, [], fma_peaks=peaks)
    return 0
