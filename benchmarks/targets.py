"""Check a `lstmkit bench --json` result against the performance issue's targets; print a Markdown table.

    python benchmarks/targets.py runs/bench/full.json

Each target is a bound on a ratio over a set of rows (every shape, mode and dtype the bench ran); the table shows
how many rows meet it and the worst row. Nothing is loosened here: a target missed on one row is missed. A row
without a ratio (the bench's "n/a": it, or its baseline, cannot run on that machine) is not measured: it is
counted apart, never as met. The targets are the performance issue's, over the shapes it named; the bench's
`call-t1` and `long-tiny` shapes (a fused call's fixed cost, per-step call overhead) are reported apart, in
BENCHMARKS.md's "Small calls", not counted here. The `lab-*` shapes of `lstmkit bench --lab` have their own
targets (every row ≤ 0.25x its torch.nn baseline, per thread count), not the ones above; for those the table also
counts the rows "beyond this machine's peak": whose floor (the ratio at the whole FMA peak) misses the bound.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable

VARIANTS = ("peephole", "coupled", "recurrent_dropout", "zoneout")
OTHER_SHAPES = ("call-t1", "long-tiny")       # not the shapes: see the module docstring
# `lstmkit bench --lab`: the small-shapes issue's targets, every lstmkit row at most this ratio to its torch.nn
# baseline (torch.nn.LSTM, GRU, RNN) with one thread and with two, forward+backward and inference alike.
LAB_BOUND = 0.25
LAB_ROWS = ("lstmkit", *VARIANTS, "layer_norm", "GRU", "GRU recurrent_dropout", "GRU zoneout", "RNN",
            "RNN recurrent_dropout", "RNN zoneout")


def _is_lab(r: dict) -> bool:
    return r["shape"].startswith("lab-")


def _rows(data: dict, row: str, dtype: str | None = None) -> list[dict]:
    return [r for r in data["rows"] if r["row"] == row and (dtype is None or r["dtype"] == dtype)
            and r["shape"] not in OTHER_SHAPES and not _is_lab(r)]


def _lab_rows(data: dict, row: str, threads: int) -> list[dict]:
    return [r for r in data["rows"] if r["row"] == row and _is_lab(r) and r.get("threads") == threads]


def _naive_speedups(data: dict, row: str) -> list[dict]:
    """naive ms / row ms at the same shape, dtype and mode, as rows with that number in 'ratio' (None where
    either was not measured)."""
    naive = {(r["shape"], r["dtype"], r["mode"]): r["ms"] for r in _rows(data, "naive")}
    out = []
    for r in _rows(data, row):
        base = naive.get((r["shape"], r["dtype"], r["mode"]))
        out.append({**r, "ratio": base / r["ms"] if base is not None and r["ms"] is not None else None})
    return out


def targets(data: dict) -> list[tuple[str, Callable[[float], bool], str, list[dict]]]:
    """(what, passes(ratio), bound as text, rows) for every target."""
    out = [("plain lstmkit / torch.nn", lambda q: q <= 1.05, "≤ 1.05", _rows(data, "lstmkit")),
           ("trace (no grad), fp32 / torch.nn inference", lambda q: q <= 1.5, "≤ 1.5", _rows(data, "trace", "float32"))]
    for v in VARIANTS:
        out.append((f"{v}, fp32 / torch.nn", lambda q: q <= 1.5, "≤ 1.5", _rows(data, v, "float32")))
    out.append(("layer_norm, fp32 / torch.nn", lambda q: q <= 1.8, "≤ 1.8", _rows(data, "layer_norm", "float32")))
    out.append(("proj / torch.nn proj", lambda q: q <= 0.7, "≤ 0.7", _rows(data, "proj")))
    for v in ("trace", *VARIANTS, "layer_norm", "proj"):
        out.append((f"naive cell / {v} (speed-up)", lambda q: q >= 3.0, "≥ 3", _naive_speedups(data, v)))
    for v in ("lstmkit", "trace", *VARIANTS, "layer_norm"):
        out.append((f"{v}, bf16 / torch.nn bf16", lambda q: q <= 1.2, "≤ 1.2", _rows(data, v, "bfloat16")))
    # GRU and RNN: the issue sets no figures for them; these are the LSTM's trace and variant bounds, applied alike.
    for cell in ("GRU", "RNN"):
        out.append((f"plain {cell} / torch.nn {cell} (as LSTM)", lambda q: q <= 1.05, "≤ 1.05", _rows(data, cell)))
        out.append((f"{cell} trace (no grad), fp32 / torch.nn {cell} inference (as LSTM)", lambda q: q <= 1.5,
                    "≤ 1.5", _rows(data, f"{cell} trace", "float32")))
        for v in ("recurrent_dropout", "zoneout"):
            out.append((f"{cell} {v}, fp32 / torch.nn {cell} (as LSTM)", lambda q: q <= 1.5, "≤ 1.5",
                        _rows(data, f"{cell} {v}", "float32")))
    # Interventions (issue 11): a fused call with interventions against the same call without.
    out.append(("intervened / fused (LSTM, same call without)", lambda q: q <= 1.5, "≤ 1.5",
                _rows(data, "intervened")))
    out.append(("GRU intervened / GRU fused (same call without)", lambda q: q <= 1.5, "≤ 1.5",
                _rows(data, "GRU intervened")))
    for threads in sorted({r.get("threads") for r in data["rows"] if _is_lab(r) and r.get("threads")}):
        for row in LAB_ROWS:
            out.append((f"lab: {row} / its torch.nn, {threads} thread{'s' * (threads > 1)}",
                        lambda q: q <= LAB_BOUND, f"≤ {LAB_BOUND}", _lab_rows(data, row, threads)))
    return out


def table(data: dict) -> str:
    lines = ["| target | bound | rows met | worst (shape, dtype, mode) |", "|---|---|---|---|"]
    for what, ok, bound, rows in targets(data):
        if not rows:
            continue
        measured = [r for r in rows if r.get("ratio") is not None]
        unmeasured = len(rows) - len(measured)
        if not measured:
            lines.append(f"| {what} | {bound} | not measured ({unmeasured} row{'s' * (unmeasured > 1)} n/a) | - |")
            continue
        speedup = bound.startswith("≥")
        worst = min(measured, key=lambda r: r["ratio"]) if speedup else max(measured, key=lambda r: r["ratio"])
        met = sum(ok(r["ratio"]) for r in measured)
        mark = "" if met == len(measured) else " **missed**"
        apart = f", {unmeasured} not measured (n/a)" if unmeasured else ""
        # The lab rows' floor: the ratio at the whole FMA peak. A row whose floor misses the bound cannot meet it on
        # the machine that ran it, by any engine.
        beyond = sum(r.get("floor") is not None and not ok(r["floor"]) for r in measured)
        apart += f", {beyond} beyond this machine's peak" if beyond else ""
        lines.append(f"| {what} | {bound} | {met}/{len(measured)}{mark}{apart} | {worst['ratio']:.2f} "
                     f"({worst['shape']}, {worst['dtype']}, {worst['mode']}) |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("json", help="the file `lstmkit bench --json PATH` wrote")
    args = p.parse_args(argv)
    with open(args.json) as fh:
        data = json.load(fh)
    print(table(data))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
