"""MKL's weight-gradient products of the fused engine's backward, in both orientations, one thread.

    python benchmarks/weight_grads.py

Per chunk of steps (T*B ~ 1024 rows) the backward adds dA^T x to dW_ih (GH, I) and dA^T h_in to dW_hh (GH, R)
(csrc/lstm_layer.cpp, csrc/gru_rnn_layer.cpp). The same sums can be taken transposed, x^T dA into (I, GH), and
transposed once at the end. This prints the microseconds of one addmm_ each way (best of 5 runs of 500) and their
ratio, at the shapes of the memory lab (GH = 4H for the LSTM, I and R from 6 to 128). The engine sums the
transposed orientation with its own kernel where `in` <= 32 (csrc/gemm.h, WeightGrad: MKL's transposed sums change
with the thread count); benchmarks/small_gemm.cpp times that kernel at the same shapes.
"""

from __future__ import annotations

import time

import torch


def best_us(fn, calls: int = 500, runs: int = 5) -> float:
    for _ in range(20):
        fn()
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        best = min(best, (time.perf_counter() - start) / calls)
    return best * 1e6


def main() -> None:
    torch.set_num_threads(1)
    print(f"{'rows':>5} {'in':>4} {'GH':>4} {'(GH, in) us':>12} {'(in, GH) us':>12} {'ratio':>6}")
    for rows, n_in, gh in [(1024, 6, 128), (1024, 32, 128), (1024, 8, 256), (1024, 16, 256), (1024, 64, 256),
                           (1024, 32, 512), (1024, 64, 512), (1024, 128, 512)]:
        da, v = torch.randn(rows, gh), torch.randn(rows, n_in)
        dw, dw_t = torch.zeros(gh, n_in), torch.zeros(n_in, gh)
        plain = best_us(lambda: dw.addmm_(da.t(), v))            # noqa: B023
        transposed = best_us(lambda: dw_t.addmm_(v.t(), da))     # noqa: B023
        print(f"{rows:>5} {n_in:>4} {gh:>4} {plain:>12.1f} {transposed:>12.1f} {transposed / plain:>6.2f}")


if __name__ == "__main__":
    main()
