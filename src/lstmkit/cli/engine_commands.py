"""``lstmkit info`` (what a bug report needs) and ``lstmkit build`` (the fused engine, ahead of time)."""

from __future__ import annotations

import sys
from collections.abc import Callable


def info_parser(sub) -> Callable:
    sub.add_parser("info", help="versions, CPU and its instruction sets, the engine's choices and state",
                   description="What a bug report needs, like `python -m torch.utils.collect_env`: lstmkit, torch "
                               "and Python versions; the CPU and the instruction-set flags that decide a path; "
                               "threads; the GEMM library and bf16 strategy the fused engine chose here and why; "
                               "where the engine is built, its buffer cache, or why it cannot build.")
    return run_info


def build_parser(sub) -> Callable:
    sub.add_parser("build", help="compile the fused engine now (for container images and CI)",
                   description="Compiles the fused engine for this CPU ahead of time (about a minute; nothing to do "
                               "when it is built already) and prints where it is.")
    return run_build


def run_info(args) -> int:
    from ..info import format_report, report

    print(format_report(report()))
    return 0


def run_build(args) -> int:
    from ..info import build_engine

    try:
        where = build_engine()
    except RuntimeError as err:
        print(f"lstmkit build: error: {err}", file=sys.stderr)
        return 1
    print(f"fused engine built for this CPU in {where}")
    return 0


ENGINE_SUBCOMMANDS: list[Callable] = [info_parser, build_parser]
