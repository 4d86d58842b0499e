// Layer norm over the n features of one row, forward and backward, for the LSTM cell's ln variant (lstm_cell.h):
// LN(v; gamma, beta) = gamma * xhat + beta, xhat = (v - mean(v)) / sqrt(var(v) + eps), biased var.
// Backward keeps only each row's mean and rstd and rebuilds xhat with `normalise` (see lstm_cell.h).
#pragma once

#include <cmath>
#include <cstdint>

namespace lstmkit {

template <typename acc_t>
struct Moments {
  acc_t mean, rstd;  // rstd = 1/sqrt(var + eps)
};

// Mean and rstd of v's n features (biased var). The sums are `omp simd reduction`s: vectorised (without it GCC
// keeps float sums in order, one lane), and still the same order on every run.
template <typename in_t, typename acc_t>
inline Moments<acc_t> moments(const in_t* __restrict v, int64_t n, acc_t eps) {
  acc_t mean = 0;
#pragma omp simd reduction(+ : mean)
  for (int64_t j = 0; j < n; ++j) mean += acc_t(v[j]);
  mean /= acc_t(n);
  acc_t var = 0;
#pragma omp simd reduction(+ : var)
  for (int64_t j = 0; j < n; ++j) {
    acc_t d = acc_t(v[j]) - mean;
    var += d * d;
  }
  return {mean, acc_t(1) / std::sqrt(var / acc_t(n) + eps)};
}

// xhat = (v - mean) * rstd. Forward and backward's rebuild both use it, so the same v gives bitwise the same xhat.
// Backward's v is a_x, a_h recomputed by one GEMM over a chunk's rows, forward's came from per-step GEMMs: the same
// bits where the library gives them for both (MKL and oneDNN did here, fp32 and bf16), else a rounding apart.
// xhat may be v itself (the rebuild overwrites a recomputed a_x in place), so no __restrict.
template <typename in_t, typename acc_t>
inline void normalise(const in_t* v, Moments<acc_t> m, int64_t n, acc_t* xhat) {
#pragma omp simd
  for (int64_t j = 0; j < n; ++j) xhat[j] = (acc_t(v[j]) - m.mean) * m.rstd;
}

// Given dL/dy for y = gamma * xhat (+ beta), writes dL/dv for v the un-normalised input.
template <typename acc_t, typename out_t>
inline void normalise_backward(const acc_t* __restrict dy, const acc_t* __restrict gamma, const acc_t* __restrict xhat,
                               acc_t rstd, int64_t n, out_t* __restrict dv) {
  acc_t s1 = 0, s2 = 0;
#pragma omp simd reduction(+ : s1, s2)
  for (int64_t j = 0; j < n; ++j) {
    acc_t d = dy[j] * gamma[j];
    s1 += d;
    s2 += d * xhat[j];
  }
  s1 /= acc_t(n);
  s2 /= acc_t(n);
#pragma omp simd
  for (int64_t j = 0; j < n; ++j) dv[j] = out_t(rstd * (dy[j] * gamma[j] - s1 - xhat[j] * s2));
}

}  // namespace lstmkit
