// Measurements of the machine the engine runs on, for `lstmkit bench` and the size thresholds in
// lstmkit/engines/fused/cpu.py: the FMA peak (what fraction of it a call reaches) and the time of one
// resident-weight product (small_gemm.h) against which the libraries' per-step calls are weighed.
#pragma once

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <vector>

#include "small_gemm.h"

namespace lstmkit {

// Floating-point operations per second (an FMA counts two) of fp32 FMAs in this build's widest vectors, on
// `threads` threads at once, each running 12 independent chains (enough to cover the FMA latency of 4-5 cycles
// on two pipes) for about `seconds`.
inline double fma_peak_flops(int64_t threads, double seconds) {
  using vec = Vector<float>::type;
  constexpr int kChains = 12;
  constexpr int kLanes = kVectorBytes / sizeof(float);
  int64_t iters = 1 << 16;
  for (;;) {  // grow until one run takes the time asked for
    std::vector<float> sink(threads, 0.0f);
    const auto start = std::chrono::steady_clock::now();
    at::parallel_for(0, threads, 1, [&](int64_t p0, int64_t p1) {
      for (int64_t p = p0; p < p1; ++p) {
        vec acc[kChains];
        for (int i = 0; i < kChains; ++i) acc[i] = vec{} + float(i + p);
        const vec a = vec{} + 0.999999f, b = vec{} + 1e-7f;
        for (int64_t k = 0; k < iters; ++k)
          for (int i = 0; i < kChains; ++i) acc[i] = acc[i] * a + b;
        float s = 0;
        for (int i = 0; i < kChains; ++i) s += acc[i][0];
        sink[p] = s;
      }
    });
    const double took = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (took >= seconds || iters >= (int64_t(1) << 40)) {
      const double flops = double(threads) * iters * kChains * kLanes * 2;
      return flops / took + 0.0 * sink[0];
    }
    iters *= 2;
  }
}

// Seconds of one resident-weight product a (M, K) @ w (N, K)^T, fp32, the fastest of `repeats` runs of `calls`.
inline double resident_product_seconds(const at::Tensor& a, const at::Tensor& w, int64_t repeats, int64_t calls) {
  const at::Tensor ac = a.contiguous().to(at::kFloat), wc = w.contiguous().to(at::kFloat);
  const int64_t M = ac.size(0), K = ac.size(1), N = wc.size(0);
  const ResidentWeight<float> W(wc.data_ptr<float>(), N, K);
  std::vector<float> out(M * N);
  double best = 1e30;
  for (int64_t r = 0; r < repeats; ++r) {
    const auto start = std::chrono::steady_clock::now();
    for (int64_t c = 0; c < calls; ++c) {
      W.apply(ac.data_ptr<float>(), K, M, out.data(), N);
      asm volatile("" : : "r"(out.data()) : "memory");  // the product is used: not optimised away
    }
    best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() / calls);
  }
  return best;
}

}  // namespace lstmkit
