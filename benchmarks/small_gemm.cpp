// The two products of the fused engine's small_gemm.h alone, in GFLOP/s, at the memory lab's shapes: the
// resident-weight product of each step (for choosing its register block) and add_at_b, the backward's weight
// gradients where the input width is small (MKL's times for those: benchmarks/weight_grads.py). Build and run,
// one thread:
//
//   g++ -O3 -march=native -I src/lstmkit/csrc benchmarks/small_gemm.cpp -o /tmp/small_gemm && /tmp/small_gemm
//   g++ -O3 -march=native -DLSTMKIT_BLOCK=4,2 -I src/lstmkit/csrc benchmarks/small_gemm.cpp -o /tmp/sg42 && /tmp/sg42
//
// Each row: the best of 15 runs of enough calls for ~0.1 s, as microseconds per product and GFLOP/s (an FMA counts
// two). Resident: M rows of a (a thread's batch rows) x K by N (the weight's rows). add_at_b: (in, GH) += v^T d
// over 1024 rows (a backward chunk).
#include "small_gemm.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <vector>

int main() {
  using lstmkit::ResidentWeight;
  const int shapes[][3] = {{32, 32, 128}, {16, 32, 128}, {32, 128, 512}, {16, 128, 512}, {16, 64, 256},
                           {8, 64, 256},  {1, 64, 256},  {2, 64, 256},   {32, 128, 32},  {16, 256, 64}};
  std::printf("block %d x %d vectors of %d bytes\n%4s %4s %4s %10s %8s\n", lstmkit::kRows, lstmkit::kPanelVectors,
              lstmkit::kVectorBytes, "M", "K", "N", "us", "GFLOP/s");
  for (const auto& s : shapes) {
    const int M = s[0], K = s[1], N = s[2];
    std::vector<float> a(M * K), w(N * K), out(M * N);
    std::mt19937 rng(1);
    std::normal_distribution<float> normal;
    for (float& v : a) v = normal(rng);
    for (float& v : w) v = normal(rng);
    const ResidentWeight<float> W(w.data(), N, K);
    const int calls = 100000000 / (M * K * N) + 10;
    double best = 1e30;
    for (int r = 0; r < 15; ++r) {
      const auto start = std::chrono::steady_clock::now();
      for (int c = 0; c < calls; ++c) {
        W.apply(a.data(), K, M, out.data(), N);
        asm volatile("" : : "r"(out.data()) : "memory");
      }
      best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() / calls);
    }
    std::printf("%4d %4d %4d %10.2f %8.1f\n", M, K, N, best * 1e6, 2.0 * M * K * N / best / 1e9);
  }
  std::printf("\nadd_at_b\n%5s %4s %4s %10s %8s\n", "rows", "in", "GH", "us", "GFLOP/s");
  const int grads[][3] = {{1024, 6, 128},  {1024, 32, 128}, {1024, 8, 256},  {1024, 16, 256},
                          {1024, 64, 256}, {1024, 32, 512}, {1024, 64, 512}, {1024, 128, 512}};
  for (const auto& s : grads) {
    const int K = s[0], M = s[1], N = s[2];
    std::vector<float> v(K * M), d(K * N), out(M * N, 0.0f);
    std::mt19937 rng(1);
    std::normal_distribution<float> normal;
    for (float& x : v) x = normal(rng);
    for (float& x : d) x = normal(rng);
    const int calls = 100000000 / (K * M * N) + 3;
    double best = 1e30;
    for (int r = 0; r < 15; ++r) {
      const auto start = std::chrono::steady_clock::now();
      for (int c = 0; c < calls; ++c) {
        lstmkit::add_at_b(v.data(), M, d.data(), N, K, M, 0, N, out.data(), N);
        asm volatile("" : : "r"(out.data()) : "memory");
      }
      best = std::min(best, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() / calls);
    }
    std::printf("%5d %4d %4d %10.2f %8.1f\n", K, M, N, best * 1e6, 2.0 * K * M * N / best / 1e9);
  }
}
