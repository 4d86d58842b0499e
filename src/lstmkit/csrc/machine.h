// Measurements of the machine the engine runs on, for `lstmkit bench` and the size thresholds in
// lstmkit/engines/fused/cpu.py: the FMA peak (what fraction of it a call reaches) and the time of one
// resident-weight product (small_gemm.h) against which the libraries' per-step calls are weighed.
#pragma once

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <ctime>
#include <vector>

#include "small_gemm.h"

namespace lstmkit {

// Floating-point operations per second (an FMA counts two) of fp32 FMAs in this build's widest vectors, on
// `threads` threads at once, each running 12 independent chains (enough to cover the FMA latency of 4-5 cycles
// on two pipes) for about `seconds` of its own CPU time. Each thread's rate is taken on its own CPU clock
// (CLOCK_THREAD_CPUTIME_ID), so time the scheduler gives other processes on a shared machine does not lower the
// peak: it is the hardware's, and the sum over the threads.
inline double fma_peak_flops(int64_t threads, double seconds) {
  using vec = Vector<float>::type;
  constexpr int kChains = 12;
  constexpr int kLanes = kVectorBytes / sizeof(float);
  auto thread_seconds = [] {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return double(ts.tv_sec) + 1e-9 * double(ts.tv_nsec);
  };
  std::vector<double> rate(threads, 0.0);
  at::parallel_for(0, threads, 1, [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      vec acc[kChains];
      for (int i = 0; i < kChains; ++i) acc[i] = vec{} + float(i + p);
      const vec a = vec{} + 0.999999f, b = vec{} + 1e-7f;
      for (int64_t iters = int64_t(1) << 14;; iters *= 2) {  // grow until one run takes the time asked for
        const double start = thread_seconds();
        for (int64_t k = 0; k < iters; ++k)
          for (int i = 0; i < kChains; ++i) acc[i] = acc[i] * a + b;
        const double took = thread_seconds() - start;
        if (took >= seconds || iters >= (int64_t(1) << 40)) {
          float s = 0;
          for (int i = 0; i < kChains; ++i) s += acc[i][0];
          rate[p] = double(iters) * kChains * kLanes * 2 / took + 0.0 * s;
          break;
        }
      }
    }
  });
  double total = 0;
  for (double r : rate) total += r;
  return total;
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
