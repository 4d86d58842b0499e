"""Timing the rows of one shape: every row in this one process, interleaved round by round, the median kept."""

from __future__ import annotations

import contextlib
import statistics
import time

import torch

import lstmkit

from .naive import NaiveLSTM
from .rows import GATES, INFERENCE_ONLY, INTERVENED, LAB_SHAPES, ROWS, SHAPES, Row, baseline, family, rnn_flops


def gemm_rate(repeats: int = 5) -> float:
    """fp32 GFLOP/s of the fastest GEMM torch offers here, measured on (6400 x 512) x (512 x 2048)."""
    x, w = torch.randn(6400, 512), torch.randn(2048, 512)
    candidates = {"torch.mm": lambda: torch.mm(x, w.t())}
    if hasattr(torch.ops.mkldnn, "_linear_pointwise"):
        candidates["onednn"] = lambda: torch.ops.mkldnn._linear_pointwise(x, w, None, "none", [], "")
    best = 0.0
    for fn in candidates.values():
        with contextlib.suppress(RuntimeError):
            fn()
            best = max(best, 2 * 6400 * 512 * 2048 / median_time(fn, repeats) / 1e9)
    return best


def fma_rate(threads: int) -> float | None:
    """fp32 GFLOP/s of vector FMAs on ``threads`` threads at once (the fused engine's ``fma_peak_flops``: 12
    independent chains per thread in this build's widest vectors); None where the engine cannot be built."""
    from ..engines.fused import build

    lib = build.load()
    if lib is None:
        return None
    return max(lib.fma_peak_flops(threads, 0.05) for _ in range(3)) / 1e9


def median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _make(row: str, I: int, H: int):
    module, kw = ROWS[row]
    kw = {k: (H // 2 if k == "proj_size" and v == -1 else v) for k, v in kw.items()}
    if module == "naive":
        return NaiveLSTM(I, H)
    if module.startswith("torch.nn."):
        return getattr(torch.nn, module.rsplit(".", 1)[-1])(I, H, **kw)
    return getattr(lstmkit, module)(I, H, **kw)


def _autocast(x):
    """bf16 rows run under a bf16 autocast on float32 input, as a user's bf16 call does; others as they are."""
    return torch.autocast("cpu", dtype=torch.bfloat16) if x.dtype == torch.bfloat16 else contextlib.nullcontext()


def _interventions(row: str, module, x):
    """The row's interventions as a context (lstmkit.interventions), or none."""
    if row not in INTERVENED:
        return contextlib.nullcontext()
    return module.intervene(*INTERVENED[row][1](x.shape[0], module.hidden_size))


def _call(row: str, module, x, train: bool):
    inp = x.float() if x.dtype == torch.bfloat16 else x
    if train:
        def run():
            with _autocast(x), _interventions(row, module, x):
                out = module(inp)[0]
            out.float().sum().backward()
    else:
        def run():
            with torch.no_grad(), _autocast(x), _interventions(row, module, x):
                return module.trace(inp) if "trace" in row else module(inp)
    return run


# oneDNN's words when it has no implementation of a primitive for this CPU's instruction set: a bf16 LSTM or
# inner product on a CPU without AVX-512 bf16 instructions, say (ONEDNN_MAX_CPU_ISA=AVX2 reproduces one). Such a
# row cannot run on this machine, which is a fact to report, not a bug to hide: every other error still raises.
_NO_IMPLEMENTATION_HERE = "could not create a primitive descriptor"


def cannot_run_here(err: RuntimeError) -> str | None:
    """Why this machine cannot run a row whose call raised ``err``; None if ``err`` means anything else."""
    message = str(err)
    if _NO_IMPLEMENTATION_HERE not in message:
        return None
    return "oneDNN on this CPU: " + message.split(". ")[0].strip()


def _engine(row: str, module, x, train: bool, trace: bool) -> str:
    """The engine this row's call runs on, asked as the call is made: inference rows under no_grad (which matters
    for traces), bf16 rows under their autocast (which matters where torch's kernel cannot run bf16)."""
    if not isinstance(module, lstmkit.Recurrent):
        return "-"
    with contextlib.nullcontext() if train else torch.no_grad(), _autocast(x), _interventions(row, module, x):
        return module.engine_for(x.float(), trace=trace)


def bench_shape(name: str, rows: list[str], dtypes: list[torch.dtype], repeats: int, peak: float | None,
                modes: list[str], threads: int | None = None) -> list[Row]:
    """Time ``rows`` at shape ``name`` (SHAPES or LAB_SHAPES); ``peak`` (GFLOP/s) is what ``of_peak`` divides by.
    ``threads`` is only recorded: the caller sets torch's thread count."""
    T, B, I, H = SHAPES[name] if name in SHAPES else LAB_SHAPES[name]
    out = []
    for dtype in dtypes:
        for mode in modes:
            if mode == "train" and name in INFERENCE_ONLY:
                continue
            train = mode == "train"
            active = [r for r in rows if not (train and "trace" in r)]
            torch.manual_seed(0)
            x = torch.randn(T, B, I).to(dtype)
            modules = {r: _make(r, I, H).train(train) for r in active}
            runs = {r: _call(r, modules[r], x, train) for r in active}
            na = {}
            for r, fn in runs.items():                   # warm up (and build the fused engine once)
                try:
                    fn()
                except RuntimeError as err:
                    na[r] = cannot_run_here(err)
                    if na[r] is None:
                        raise
            timed = [r for r in active if r not in na]
            times: dict[str, list[float]] = {r: [] for r in timed}
            for _ in range(repeats):
                for r in timed:
                    start = time.perf_counter()
                    runs[r]()
                    times[r].append(time.perf_counter() - start)
            med = {r: statistics.median(t) * 1e3 for r, t in times.items()}
            dt = str(dtype).replace("torch.", "")
            for r in active:
                engine = _engine(r, modules[r], x, train, trace="trace" in r)
                if r in na:
                    out.append(Row(name, T, B, I, H, dt, mode, r, engine, None, na=na[r], threads=threads))
                    continue
                base = baseline(r)
                P = H // 2 if ROWS[r][1].get("proj_size") else 0
                flops = rnn_flops(T, B, I, H, P, train, GATES[family(r)])
                gflops = flops / (med[r] / 1e3) / 1e9
                ratio = med[r] / med[base] if base in med else None
                of_peak = gflops / peak if (peak and dtype == torch.float32) else None
                # the ratio at the whole peak: this row's FLOPs at the peak over the baseline's time
                floor = ratio * of_peak if (threads is not None and ratio is not None and of_peak is not None) else None
                out.append(Row(name, T, B, I, H, dt, mode, r, engine, med[r], ratio, gflops, of_peak, threads=threads,
                               floor=floor))
    return out
