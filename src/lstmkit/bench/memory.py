"""Peak resident memory of one call, each measured in a fresh process: forward+backward at the fastrnns shape, and
inference against T."""

from __future__ import annotations

import subprocess
import sys

import torch

from .rows import SHAPES

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
