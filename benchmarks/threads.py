"""Do two Python threads calling the fused engine overlap? (Its C++ entry points release the GIL: csrc/module.cpp.)

Each row runs ``calls`` forward calls twice: one after another in one thread, then split over two threads.
With one intra-op thread per call (``torch.set_num_threads(1)``), calls that hold the GIL serialise and the
two-thread run takes as long as the serial one (speed-up 1.0); calls that release it overlap (up to 2.0 on two
free cores). Yardsticks in the same run: torch.nn.LSTM (its kernels release the GIL), a pure-Python loop (holds
it), and, with ``--gil-held-build``, the same engine call on a build of the code before the release (e.g. the
``lstmkit_fused_<hash>.so`` of main's commit in ~/.cache/lstmkit), which held the GIL.

    python benchmarks/threads.py [--repeats 5] [--calls 20] [--gil-held-build PATH.so] [--out runs/bench/threads.json]

Prints median wall seconds of the repeats and the speed-up (serial / two threads) per row.
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
from pathlib import Path

import torch

import lstmkit

T, B, I, H = 100, 16, 128, 128


def calls_to_time(raw_engine: str | None):
    """name -> a function of x running one inference call; only the raw layer call of the engine at
    ``raw_engine`` (a .so) when given (two builds of the engine cannot be loaded in one process: their pybind
    option types collide)."""
    from lstmkit.engines.fused import build, cpu

    peephole = lstmkit.LSTM(I, H, peephole=True)
    w = peephole._weights()[0][0]
    args = (torch.zeros(B, H), torch.zeros(B, H), w.weight_ih.detach(), w.weight_hh.detach(),
            (w.bias_ih + w.bias_hh).detach(), w["weight_peephole"].detach(), None, None, None, None, None)

    def raw(engine):
        opts = engine.LstmOptions()
        opts.save, opts.records, opts.has_peephole = False, False, True
        opts.gemm = cpu.gemm_id(torch.float32, B * H * 4 * H)
        return lambda x: engine.forward(x, *args, opts)

    if raw_engine:
        return {"fused layer call, GIL-held build": raw(_load(raw_engine))}
    return {"torch.nn.LSTM": torch.nn.LSTM(I, H), "lstmkit LSTM(peephole) [fused]": peephole,
            "lstmkit GRU [fused]": lstmkit.GRU(I, H, backend="fused"),
            "fused layer call, this build": raw(build.module()),
            "pure-Python loop (holds the GIL)": lambda x: sum(i * i for i in range(20000))}


def _load(path: str):
    import importlib.machinery
    import importlib.util

    name = Path(path).stem
    loader = importlib.machinery.ExtensionFileLoader(name, path)
    spec = importlib.util.spec_from_file_location(name, path, loader=loader)
    assert spec is not None and spec.loader is not None
    lib = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(lib)
    return lib


def run(module, x, calls: int, threads: int) -> float:
    def work():
        with torch.no_grad():
            for _ in range(calls // threads):
                module(x)

    pool = [threading.Thread(target=work) for _ in range(threads)]
    start = time.perf_counter()
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--gil-held-build", default=None, help="a .so of the engine built before the GIL release")
    parser.add_argument("--raw-engine", default=None, help=argparse.SUPPRESS)   # the child run of --gil-held-build
    parser.add_argument("--out", default="runs/bench/threads.json")
    args = parser.parse_args()
    torch.set_num_threads(1)
    x = torch.randn(T, B, I)
    rows = []
    if not args.raw_engine:
        print(f"T={T}, B={B}, I={I}, H={H}, inference, {args.calls} calls, torch.set_num_threads(1), "
              f"median of {args.repeats}")
        print(f"{'call':36} {'serial s':>9} {'2 threads s':>12} {'speed-up':>9}")
    for name, module in calls_to_time(args.raw_engine).items():
        run(module, x, 2, 1)                                   # warm-up (builds and loads the engine once)
        serial, parallel = [], []
        for _ in range(args.repeats):                          # interleaved, so drifts in load hit both alike
            serial.append(run(module, x, args.calls, 1))
            parallel.append(run(module, x, args.calls, 2))
        s, p = statistics.median(serial), statistics.median(parallel)
        rows.append({"module": name, "serial_s": s, "two_threads_s": p, "speedup": s / p})
        print(f"{name:36} {s:9.3f} {p:12.3f} {s / p:9.2f}")
    if args.raw_engine:
        return
    if args.gil_held_build:
        import subprocess
        import sys

        child = subprocess.run([sys.executable, __file__, "--raw-engine", args.gil_held_build, "--repeats",
                                str(args.repeats), "--calls", str(args.calls)], capture_output=True, text=True)
        print(child.stdout.rstrip() or child.stderr)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"shape": [T, B, I, H], "calls": args.calls, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
