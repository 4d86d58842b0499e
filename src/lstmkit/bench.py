"""``lstmkit bench``: lstmkit against torch.nn.LSTM (GRU, RNN) and a naive per-step Python cell, on recognised shapes.

    lstmkit bench [--quick] [--repeats N] [--shapes NAME ...] [--json PATH] [--no-memory]
    python -m lstmkit.bench ...   (the same)

Every row of one shape runs in this one process, interleaved (one timing of each row per round, rounds
repeated), and the median is reported; ratios are to ``torch.nn.LSTM`` at the same shape, mode and dtype in the
same run (``proj`` rows to torch.nn with the same ``proj_size``, GRU and RNN rows to ``torch.nn.GRU``, ``RNN``).
The fp32 GEMM rate is measured in the same run, so each row also shows its GFLOP/s as a fraction of it.
"infer" is a forward under ``torch.no_grad()`` in eval mode; "train" is forward + backward of ``output.sum()`` in
training mode. bf16 rows run under ``torch.autocast("cpu", dtype=torch.bfloat16)``, torch.nn's included.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import statistics
import sys
import time
import warnings
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

import lstmkit
from lstmkit._rules import POSITIVE_INT, argument_type

# name: (T, B, I, H)
SHAPES = {
    "fastrnns": (100, 64, 512, 512),
    "deepbench-h256-b16": (150, 16, 256, 256),
    "deepbench-h256-b64": (150, 64, 256, 256),
    "deepbench-h1024-b16": (25, 16, 1024, 1024),
    "deepbench-h1024-b64": (25, 64, 1024, 1024),
    "device-inference": (150, 1, 256, 256),
    "long": (1000, 32, 128, 128),
}
QUICK_SHAPES = ("fastrnns", "long")
INFERENCE_ONLY = ("device-inference",)

# name: (module, keyword arguments). "naive" is the Python cell below; rows named "... trace ..." run
# module.trace(x) (inference only); proj_size -1 means H/2. Each row's ratio is to its baseline(row).
ROWS = {
    "torch.nn": ("torch.nn.LSTM", {}),
    "naive": ("naive", {}),
    "lstmkit": ("LSTM", {}),
    "trace": ("LSTM", {}),
    "peephole": ("LSTM", {"peephole": True}),
    "coupled": ("LSTM", {"coupled": True}),
    "layer_norm": ("LSTM", {"layer_norm": True}),
    "recurrent_dropout": ("LSTM", {"recurrent_dropout": 0.25}),
    "zoneout": ("LSTM", {"zoneout": 0.1}),
    "torch.nn proj": ("torch.nn.LSTM", {"proj_size": -1}),
    "proj": ("LSTM", {"proj_size": -1}),
    "torch.nn GRU": ("torch.nn.GRU", {}),
    "GRU": ("GRU", {}),
    "GRU trace": ("GRU", {}),
    "GRU trace on torch": ("GRU", {"backend": "torch"}),        # torch's kernel + replay, for comparison
    "GRU recurrent_dropout": ("GRU", {"recurrent_dropout": 0.25}),
    "GRU zoneout": ("GRU", {"zoneout": 0.1}),
    "torch.nn RNN": ("torch.nn.RNN", {}),
    "RNN": ("RNN", {}),
    "RNN trace": ("RNN", {}),
    "RNN trace on torch": ("RNN", {"backend": "torch"}),
    "RNN recurrent_dropout": ("RNN", {"recurrent_dropout": 0.25}),
    "RNN zoneout": ("RNN", {"zoneout": 0.1}),
}
GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}


def family(row: str) -> str:
    """LSTM, GRU or RNN: the recurrence a row runs."""
    module = ROWS[row][0]
    return "LSTM" if module == "naive" else module.rsplit(".", 1)[-1]


def baseline(row: str) -> str:
    """The torch.nn row a row's ratio is taken to: the same cell, with the same proj_size."""
    if ROWS[row][1].get("proj_size") and not ROWS[row][0].startswith("torch.nn"):
        return "torch.nn proj"
    return "torch.nn" if family(row) == "LSTM" else f"torch.nn {family(row)}"


QUICK_ROWS = ("torch.nn", "naive", "lstmkit", "trace", "peephole", "layer_norm", "torch.nn proj", "proj",
              "torch.nn GRU", "GRU", "GRU trace")


class NaiveLSTM(torch.nn.Module):
    """What users write today for a custom cell: a Python loop over steps, autograd for the backward."""

    def __init__(self, I: int, H: int):
        super().__init__()
        self.cell = torch.nn.LSTMCell(I, H)

    def forward(self, x):                                           # x (T, B, I)
        h = x.new_zeros(x.shape[1], self.cell.hidden_size)
        c = torch.zeros_like(h)
        w_ih, w_hh, b = self.cell.weight_ih, self.cell.weight_hh, self.cell.bias_ih + self.cell.bias_hh
        ys = []
        for x_t in x:
            a = F.linear(x_t, w_ih, b) + F.linear(h, w_hh)          # (B, 4H)
            i, f, g, o = a.chunk(4, dim=-1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
            ys.append(h)
        return torch.stack(ys), (h, c)


@dataclass
class Row:
    shape: str
    T: int
    B: int
    I: int
    H: int
    dtype: str
    mode: str
    row: str
    engine: str
    ms: float
    ratio: float | None = None
    gflops: float | None = None
    of_peak: float | None = None


def rnn_flops(T: int, B: int, I: int, H: int, P: int = 0, train: bool = False, gates: int = 4) -> float:
    """GEMM flops of one layer with `gates` H-row blocks (LSTM 4, GRU 3, RNN 1): the input and recurrent products
    (and projection); backward is ~2x forward."""
    R = P or H
    fwd = 2 * T * B * gates * H * (I + R) + (2 * T * B * H * P if P else 0)
    return fwd * (3 if train else 1)


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


def _call(row: str, module, x, train: bool):
    autocast = torch.autocast("cpu", dtype=torch.bfloat16) if x.dtype == torch.bfloat16 else \
        contextlib.nullcontext()
    inp = x.float() if x.dtype == torch.bfloat16 else x
    if train:
        def run():
            with autocast:
                out = module(inp)[0]
            out.float().sum().backward()
    else:
        def run():
            with torch.no_grad(), autocast:
                return module.trace(inp) if "trace" in row else module(inp)
    return run


def _engine(module, x, train: bool, trace: bool) -> str:
    """The engine this row's call runs on: inference rows run under no_grad, which matters for traces."""
    if not isinstance(module, lstmkit.Recurrent):
        return "-"
    with contextlib.nullcontext() if train else torch.no_grad():
        return module.engine_for(x[:1].float(), trace=trace)


def bench_shape(name: str, rows: list[str], dtypes: list[torch.dtype], repeats: int, peak: float,
                modes: list[str]) -> list[Row]:
    T, B, I, H = SHAPES[name]
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
            for fn in runs.values():                     # warm up (and build the fused engine once)
                fn()
            times = {r: [] for r in active}
            for _ in range(repeats):
                for r in active:
                    start = time.perf_counter()
                    runs[r]()
                    times[r].append(time.perf_counter() - start)
            med = {r: statistics.median(t) * 1e3 for r, t in times.items()}
            for r in active:
                base = baseline(r)
                P = H // 2 if ROWS[r][1].get("proj_size") else 0
                flops = rnn_flops(T, B, I, H, P, train, GATES[family(r)])
                gflops = flops / (med[r] / 1e3) / 1e9
                m = modules[r]
                engine = _engine(m, x, train, trace="trace" in r)
                out.append(Row(name, T, B, I, H, str(dtype).replace("torch.", ""), mode, r, engine, med[r],
                               med[r] / med[base] if base in med else None, gflops,
                               gflops / peak if (peak and dtype == torch.float32) else None))
    return out


_PEAK_SCRIPT = """
import resource, sys, warnings, torch, lstmkit
warnings.filterwarnings("ignore")
torch.set_num_threads({threads})
T, B, I, H, train, kind, cell, kw = {T}, {B}, {I}, {H}, {train}, {kind!r}, {cell!r}, {kw!r}
m = getattr(torch.nn, cell)(I, H) if kind == "torch.nn" else getattr(lstmkit, cell)(I, H, **kw)
m.train(train)
x = torch.randn(T, B, I)

def status(key):
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith(key))

try:  # reset the high-water mark to the current RSS (Linux), so imports' transient peaks do not hide ours
    with open("/proc/self/clear_refs", "w") as fh:
        fh.write("5")
    base, peak = status("VmRSS:"), lambda: status("VmHWM:")
except OSError:
    peak = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    base = peak()
if train:
    m(x)[0].sum().backward()
else:
    with torch.no_grad():
        m(x)
print(peak() - base)
"""


def peak_memory_mb(kind: str, kw: dict, T: int, B: int, I: int, H: int, train: bool, cell: str = "LSTM") -> float:
    """Peak resident memory a call adds over building the module and its input, in MB, measured in a fresh
    process (one warm-up call in the same process would hide the first call's peak). On Linux the high-water
    mark is reset just before the call; elsewhere it is ru_maxrss, which an earlier transient peak can mask."""
    import subprocess

    code = _PEAK_SCRIPT.format(threads=torch.get_num_threads(), T=T, B=B, I=I, H=H, train=train, kind=kind,
                               cell=cell, kw=kw)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1]) / 1024                  # KB on Linux


def memory_rows(quick: bool) -> list[dict]:
    """Forward+backward peak at the fastrnns shape (torch.nn vs lstmkit plain and variants; the GRU against
    torch.nn.GRU), and inference peak against T (the state memory an inference call holds should not grow with T
    beyond input and output)."""
    T, B, I, H = SHAPES["fastrnns"]
    rows = []
    kinds = [("torch.nn", {}), ("lstmkit", {}), ("peephole", {"peephole": True}), ("layer_norm", {"layer_norm": True})]
    if quick:
        kinds = kinds[:2]
    base = None
    for name, kw in kinds:
        mb = peak_memory_mb("torch.nn" if name == "torch.nn" else "lstmkit", kw, T, B, I, H, True)
        base = mb if base is None else base
        rows.append({"what": f"train peak, {name}", "T": T, "mb": mb, "ratio": mb / base if base > 0 else None})
    if not quick:                                       # the GRU, which auto runs on the fused engine
        gru = [peak_memory_mb(kind, {}, T, B, I, H, True, cell="GRU") for kind in ("torch.nn", "lstmkit")]
        rows.append({"what": "train peak, torch.nn GRU", "T": T, "mb": gru[0], "ratio": 1.0})
        rows.append({"what": "train peak, lstmkit GRU", "T": T, "mb": gru[1],
                     "ratio": gru[1] / gru[0] if gru[0] > 0 else None})
    infer = [("lstmkit", {})] if quick else [("torch.nn", {}), ("lstmkit", {}), ("peephole", {"peephole": True})]
    for name, kw in infer:
        for steps in (100, 1000):
            mb = peak_memory_mb("torch.nn" if name == "torch.nn" else "lstmkit", kw, steps, B, I, H, False)
            output = steps * B * H * 4 / 2**20                                  # the input exists before the call
            rows.append({"what": f"infer peak - output, {name}", "T": steps, "mb": mb - output, "ratio": None})
    return rows


def format_table(rows: list[Row]) -> str:
    head = (f"{'shape':22} {'dtype':8} {'mode':5} {'row':21} {'engine':9} {'ms':>9} {'ratio':>7} {'GF/s':>7} "
            f"{'%peak':>6}")
    lines = [head, "-" * len(head)]
    for r in rows:
        ratio = f"{r.ratio:7.2f}" if r.ratio is not None else "      -"
        peak = f"{100 * r.of_peak:5.0f}%" if r.of_peak is not None else "     -"
        lines.append(f"{r.shape:22} {r.dtype:8} {r.mode:5} {r.row:21} {r.engine:9} {r.ms:9.2f} {ratio} "
                     f"{r.gflops:7.1f} {peak}")
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


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The options of ``lstmkit bench`` (shared by ``python -m lstmkit.bench`` and the ``lstmkit`` command)."""
    p.add_argument("--quick", action="store_true", help="two shapes, fewer rows, fp32: under a minute")
    p.add_argument("--repeats", type=argument_type(POSITIVE_INT), default=None,
                   help="timed rounds per row (default 5, quick 3)")
    p.add_argument("--shapes", nargs="+", choices=sorted(SHAPES), help="run only these shapes")
    p.add_argument("--json", metavar="PATH", help="write the rows and the machine description as JSON")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory measurements")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="lstmkit bench", description=__doc__.split("\n\n")[0])
    add_arguments(p)
    return run(p.parse_args(argv))


def run(args: argparse.Namespace) -> int:
    """Measure and print the tables (``args`` as parsed by :func:`add_arguments`, already validated)."""
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
        print(f"{'memory (fastrnns B, I, H)':42} {'T':>5} {'MB':>8} {'ratio':>6}")
        for m in memory:
            ratio = f"{m['ratio']:6.2f}" if m["ratio"] is not None else "     -"
            print(f"{m['what']:42} {m['T']:5d} {m['mb']:8.1f} {ratio}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"machine": info, "gemm_gflops": peak, "repeats": repeats,
                       "rows": [asdict(r) for r in results], "memory": memory}, fh, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
