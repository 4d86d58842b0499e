"""Streaming latency: one step per call at batch 1, what a real-time caller pays per input frame.

``lstmkit.Stream`` against the torch.nn module called with its state carried by hand (``y, hx = lstm(x, hx)``),
both under ``no_grad`` in eval mode, interleaved round by round in one process; each round times ``CALLS``
consecutive calls and the median round is kept (us per call)."""

from __future__ import annotations

import statistics
import time

import torch

import lstmkit

STREAM_SIZES = (64, 256)          # H = I
CALLS = 200


def _torch_call(module: torch.nn.Module, x: torch.Tensor, hx):
    state = [hx]

    def run():
        _, state[0] = module(x, state[0])
    return run


def _stream_call(stream: lstmkit.Stream, x: torch.Tensor):
    def run():
        stream(x)
    return run


def stream_rows(repeats: int) -> list[dict]:
    out = []
    for H in STREAM_SIZES:
        torch.manual_seed(0)
        x = torch.randn(1, 1, H)
        zeros = torch.zeros(1, 1, H)
        runs = {
            "torch.nn.LSTM (carried state)": _torch_call(torch.nn.LSTM(H, H).eval(), x, (zeros, zeros)),
            "Stream(LSTM)": _stream_call(lstmkit.Stream(lstmkit.LSTM(H, H).eval()), x),
            "Stream(LSTM peephole)": _stream_call(lstmkit.Stream(lstmkit.LSTM(H, H, peephole=True).eval()), x),
            "torch.nn.GRU (carried state)": _torch_call(torch.nn.GRU(H, H).eval(), x, zeros),
            "Stream(GRU)": _stream_call(lstmkit.Stream(lstmkit.GRU(H, H).eval()), x),
        }
        times: dict[str, list[float]] = {name: [] for name in runs}
        with torch.no_grad():
            for run in runs.values():                   # warm up (and build the fused engine once)
                for _ in range(10):
                    run()
            for _ in range(repeats):
                for name, run in runs.items():
                    start = time.perf_counter()
                    for _ in range(CALLS):
                        run()
                    times[name].append((time.perf_counter() - start) / CALLS)
        us = {name: statistics.median(t) * 1e6 for name, t in times.items()}
        for name, value in us.items():
            base = "torch.nn.GRU (carried state)" if "GRU" in name else "torch.nn.LSTM (carried state)"
            out.append({"what": name, "H": H, "us_per_step": value, "ratio": value / us[base]})
    return out


def format_stream(rows: list[dict]) -> str:
    lines = [f"{'streaming, batch 1, one step per call':38} {'H':>4} {'us/step':>9} {'ratio':>6}"]
    for r in rows:
        lines.append(f"{r['what']:38} {r['H']:4d} {r['us_per_step']:9.1f} {r['ratio']:6.2f}")
    return "\n".join(lines)
