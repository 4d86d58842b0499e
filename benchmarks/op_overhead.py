"""The fixed cost of the custom-op layer on one eager fused call (lstmkit/engines/fused/ops.py).

Three paths for the same small LSTM(peephole=True) layer call, interleaved in one run (median over rounds of the
mean per call in each round):

- ``op``: through ``torch.ops.lstmkit.lstm_forward`` and its registered autograd (what traced calls use; every
  eager call before the direct path);
- ``direct``: ``ops.lstm``'s eager path, the same implementation through a plain autograd.Function;
- ``raw``: the floor: the compiled extension's forward and backward called from a minimal autograd.Function
  with the options built once (no argument checks, no preparation).

Inference (no grad) and training (forward + backward) per layer call, then the whole module (lstmkit.LSTM).
One intra-op thread, and the time is this thread's CPU time (time.thread_time), not wall time: on a machine shared
with other jobs, wall time per call mostly measures waiting for a core (see BENCHMARKS.md).

    python benchmarks/op_overhead.py [--rounds 21] [--calls 200]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import lstmkit
from lstmkit.engines.fused import build, lstm_layer, ops

T, B, I, H = 4, 1, 32, 32


class _Raw(torch.autograd.Function):
    """The extension's forward and backward with nothing around them (options built once by the caller)."""

    @staticmethod
    def forward(ctx, x, h0, c0, w_ih, w_hh, bias, peep, opts):
        engine = build.module()
        out = engine.forward(x, h0, c0, w_ih, w_hh, bias, peep, None, None, None, None, None, opts)
        ctx.opts = opts
        if opts.save:
            ctx.save_for_backward(x, c0, w_ih, w_hh, bias, peep, *out[3:])
        return out[0], out[1], out[2]

    @staticmethod
    def backward(ctx, dy, dh_n, dc_n):
        x, c0, w_ih, w_hh, bias, peep, gates, c_seq, hin, hraw, cnew, tanhm, mean, rstd = ctx.saved_tensors
        grads = build.module().backward(dy.contiguous(), dh_n.contiguous(), dc_n.contiguous(), x, c0, w_ih, w_hh,
                                        bias, peep, None, None, None, None, None, hin, hraw, gates, c_seq, cnew,
                                        tanhm, mean, rstd, True, ctx.opts)
        return (*grads[:6], grads[7], None)


def per_call(fn, calls: int) -> float:
    start = time.thread_time()
    for _ in range(calls):
        fn()
    return (time.thread_time() - start) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=21)
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(1)
    build.module()
    eager_tracing = ops.tracing

    def layer_args(grad):
        t = [torch.randn(*s).requires_grad_(grad) for s in ((T, B, I), (B, H), (B, H), (4 * H, I), (4 * H, H),
                                                            (4 * H,), (4 * H,), (3, H))]
        return t

    paths: dict[str, dict] = {}
    for mode in ("infer", "train"):
        grad = mode == "train"
        x, h0, c0, w_ih, w_hh, b_ih, b_hh, peep = layer_args(grad)

        def layer(x=x, h0=h0, c0=c0, w_ih=w_ih, w_hh=w_hh, b_ih=b_ih, b_hh=b_hh, peep=peep, grad=grad):
            y, h_n, c_n, _, _ = lstm_layer(x, h0, c0, w_ih, w_hh, b_ih, b_hh, peephole=peep, records=False)
            if grad:
                (y.sum() + h_n.sum() + c_n.sum()).backward()

        engine = build.module()
        opts = ops._lstm_options(engine, x, w_ih, w_hh, None, None, None, None, 0.0, False, grad, False, True, True,
                                 [], [])
        bias = (b_ih.detach() + b_hh.detach()).requires_grad_(grad)

        def raw(x=x, h0=h0, c0=c0, w_ih=w_ih, w_hh=w_hh, bias=bias, peep=peep, opts=opts, grad=grad):
            y, h_n, c_n = _Raw.apply(x, h0, c0, w_ih, w_hh, bias, peep, opts)
            if grad:
                (y.sum() + h_n.sum() + c_n.sum()).backward()

        module = lstmkit.LSTM(I, H, peephole=True).train(grad)
        xm = torch.randn(T, B, I)

        def whole(module=module, xm=xm, grad=grad):
            with torch.set_grad_enabled(grad):
                y, (h, c) = module(xm)
                if grad:
                    (y.sum() + h.sum() + c.sum()).backward()

        paths[f"layer {mode}"] = {"op": layer, "direct": layer, "raw": raw}
        paths[f"LSTM module {mode}"] = {"op": whole, "direct": whole}
    times: dict[tuple[str, str], list[float]] = {}
    for _ in range(args.rounds):
        for row, fns in paths.items():
            for path, fn in fns.items():
                ops.tracing = (lambda x: True) if path == "op" else eager_tracing
                try:
                    times.setdefault((row, path), []).append(per_call(fn, args.calls))
                finally:
                    ops.tracing = eager_tracing
    print(f"T={T}, B={B}, I={I}, H={H}, LSTM(peephole=True), {torch.get_num_threads()} threads; "
          f"median over {args.rounds} interleaved rounds of the mean of {args.calls} calls, us of CPU time per call")
    print("| call | op | direct | raw | op - direct | direct - raw |\n|---|---|---|---|---|---|")
    for row, fns in paths.items():
        med = {p: statistics.median(times[(row, p)]) for p in fns}
        raw_s = f"{med['raw']:.1f}" if "raw" in med else "-"
        gap = f"{med['direct'] - med['raw']:.1f}" if "raw" in med else "-"
        print(f"| {row} | {med['op']:.1f} | {med['direct']:.1f} | {raw_s} | {med['op'] - med['direct']:.1f} | {gap} |")


if __name__ == "__main__":
    main()
