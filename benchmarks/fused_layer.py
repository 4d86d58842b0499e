"""Time the fused LSTM layer (lstmkit.engines.fused.lstm_layer) against torch.nn.LSTM, one layer, one direction.

Prints a table (median ms of interleaved repeats, ratio to torch.nn) and writes it as JSON:

    python benchmarks/fused_layer.py [--repeats 7] [--shapes default|quick] [--threads N] [--clock wall|cpu]
                                     [--out runs/bench/fused_layer.json]

Inference runs under torch.no_grad(); "train" is forward + backward of y.sum(). Variants run at the first shape and
are compared with torch.nn's plain LSTM (torch.nn has none of them; projection is torch.nn's proj_size).
bf16 runs both sides under torch.autocast("cpu", torch.bfloat16), ours with bf16 weights and inputs.
On a shared machine wall time is noise; ``--threads 1 --clock cpu`` times CPU seconds of one thread instead,
which other processes barely disturb (it hides how each side scales to more threads).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import warnings
from pathlib import Path

import torch

from lstmkit.engines import fused

SHAPES = {  # (T, B, I, H)
    "default": [(100, 64, 512, 512), (150, 16, 256, 256), (25, 64, 1024, 1024), (150, 1, 256, 256)],
    "quick": [(100, 64, 512, 512)],
}
VARIANTS = ["plain", "proj", "peephole", "ln", "coupled", "recurrent_mask", "zoneout", "lengths"]


def make_ours(lstm: torch.nn.LSTM, variant: str, T: int, B: int, dtype: torch.dtype):
    H, R = lstm.hidden_size, lstm.proj_size or lstm.hidden_size
    w = [p.detach().to(dtype).requires_grad_() for p in (lstm.weight_ih_l0, lstm.weight_hh_l0, lstm.bias_ih_l0,
                                                       lstm.bias_hh_l0)]
    w_hr = lstm.weight_hr_l0.detach().to(dtype).requires_grad_() if lstm.proj_size else None
    kw = {}
    if variant == "peephole":
        kw["peephole"] = torch.zeros(3, H, dtype=dtype, requires_grad=True)
    if variant == "ln":
        kw["ln"] = tuple(torch.full((n,), v, dtype=dtype, requires_grad=True)
                         for n, v in ((4 * H, 1.0), (4 * H, 1.0), (H, 1.0), (H, 0.0)))
    if variant == "coupled":
        kw["coupled"] = True
    if variant == "recurrent_mask":
        kw["recurrent_mask"] = torch.empty(B, R).bernoulli_(0.75).div_(0.75).to(dtype)
    if variant == "zoneout":
        z_h, z_c = torch.empty(T, B, R).bernoulli_(0.1), torch.empty(T, B, H).bernoulli_(0.1)
        kw["zoneout"] = (z_h.to(dtype), z_c.to(dtype))                     # in the cell's state order (h, c)
    if variant == "lengths":
        kw["lengths"] = torch.randint(T // 2, T + 1, (B,)).sort(descending=True).values
    h0, c0 = torch.zeros(B, R, dtype=dtype), torch.zeros(B, H, dtype=dtype)

    def run(x):
        return fused.lstm_layer(x, h0, c0, *w, w_hr=w_hr, **kw)[0]

    return run


def timed(fn, x, train: bool, autocast: bool, clock) -> float:
    start = clock()
    with torch.autocast("cpu", torch.bfloat16, enabled=autocast):
        if train:
            y = fn(x)
        else:
            with torch.no_grad():
                y = fn(x)
    if train:
        y.float().sum().backward()
    return (clock() - start) * 1e3


def compare(T, B, I, H, variant, dtype, train, repeats, clock):
    torch.manual_seed(0)
    proj = H // 2 if variant == "proj" else 0
    lstm = torch.nn.LSTM(I, H, proj_size=proj)
    x = torch.randn(T, B, I, requires_grad=train)
    xb = x.detach().to(dtype).requires_grad_(train)
    ours = make_ours(lstm, variant, T, B, dtype)
    bf16 = dtype == torch.bfloat16

    def theirs(x_):
        return lstm(x_)[0]

    ts_ours, ts_torch = [], []
    for k in range(repeats + 1):  # the first round warms up (and builds) both
        a = timed(ours, xb, train, bf16, clock)
        b = timed(theirs, x, train, bf16, clock)
        if k:
            ts_ours.append(a)
            ts_torch.append(b)
    return statistics.median(ts_ours), statistics.median(ts_torch)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--shapes", choices=sorted(SHAPES), default="default")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--dtypes", default="float32,bfloat16")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--clock", choices=["wall", "cpu"], default="wall")
    parser.add_argument("--out", type=Path, default=Path("runs/bench/fused_layer.json"))
    args = parser.parse_args()
    if args.clock == "cpu" and args.threads != 1:
        parser.error("--clock cpu needs --threads 1 (CPU time summed over threads would count spinning)")
    torch.set_num_threads(args.threads)
    clock = time.process_time if args.clock == "cpu" else time.perf_counter
    if not fused.is_available():
        raise SystemExit(f"fused engine unavailable: {fused.unavailable_reason()}")
    warnings.filterwarnings("ignore", message=".*projections.*")  # torch.nn's slower native path for proj_size
    rows = []
    print(f"torch {torch.__version__}, {args.threads} threads, {args.clock} clock; median of {args.repeats}, ms")
    print(f"{'T':>4} {'B':>3} {'I':>5} {'H':>5} {'variant':>15} {'dtype':>9} {'mode':>6} "
          f"{'fused':>9} {'torch.nn':>9} {'ratio':>6}")
    for dtype_name in args.dtypes.split(","):
        dtype = getattr(torch, dtype_name)
        for s, (T, B, I, H) in enumerate(SHAPES[args.shapes]):
            for variant in args.variants.split(",") if s == 0 else ["plain"]:
                for train in (False, True):
                    ours, theirs = compare(T, B, I, H, variant, dtype, train, args.repeats, clock)
                    mode = "train" if train else "infer"
                    rows.append({"T": T, "B": B, "I": I, "H": H, "variant": variant, "dtype": dtype_name,
                                 "mode": mode, "fused_ms": ours, "torch_ms": theirs, "ratio": ours / theirs})
                    print(f"{T:>4} {B:>3} {I:>5} {H:>5} {variant:>15} {dtype_name:>9} {mode:>6} "
                          f"{ours:>9.2f} {theirs:>9.2f} {ours / theirs:>6.2f}", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"torch": torch.__version__, "threads": args.threads, "clock": args.clock, "repeats": args.repeats}
    args.out.write_text(json.dumps({**meta, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
