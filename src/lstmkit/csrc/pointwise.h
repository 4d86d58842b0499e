// The pointwise math every cell shares: sigmoid and tanh in forms the compiler vectorises inside
// `omp simd` loops (lstm_cell.h, gru_rnn_cell.h).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

namespace lstmkit {

// Always inlined: called inside `omp simd` loops, where an out-of-line call would stop vectorisation (GCC
// declined to inline once the plain cell's pass grew).
#define LSTMKIT_INLINE inline __attribute__((always_inline))

// tanh for float as a rational function the compiler vectorises (std::tanh does not without libmvec):
// tanh(x) ~ x P(x^2) / Q(x^2), P of degree 5 and Q of degree 3 in x^2, on x clamped to [-9, 9] (tanh(9) rounds to
// 1 in float, and so does this at 9: the ends saturate exactly). The coefficients are a weighted least-squares fit
// made by tools/fit_tanh.py; Q's roots are all negative in x^2, so there is no pole. Max absolute error over the
// floats, against tanh in double: 3.2e-7 (tanh), 1.9e-7 (sigmoid below). One division, eight FMAs and two
// compares, where the exp-based form it replaces (Cephes' expf, then 1 - 2 / (e^2x + 1)) took two selects per
// clamp, a rounding, a seven-term polynomial and the exponent's assembly: under `perf` over 2,000 lab-h32
// inference calls (AMD EPYC, AVX2, one thread) the LSTM's forward pointwise pass took 1.57x the samples of the
// per-step product before and 0.91x after (BENCHMARKS.md, "Small shapes").
LSTMKIT_INLINE float tanh_(float x) {
  constexpr float kEnd = 9.0f;
  x = x > -kEnd ? x : -kEnd;  // two plain selects (not std::clamp): each becomes one max/min instruction
  x = x < kEnd ? x : kEnd;
  const float x2 = x * x;
  float p = 1.8853335559398943e-11f;
  p = p * x2 - 1.3044230001701962e-08f;
  p = p * x2 + 9.36451058089786e-06f;
  p = p * x2 + 0.0029320480796670503f;
  p = p * x2 + 0.12929905781464243f;
  p = p * x2 + 0.9999998620402194f;
  float q = 0.00022962346073560546f;
  q = q * x2 + 0.023809968808384267f;
  q = q * x2 + 0.4626318472314297f;
  q = q * x2 + 1.0f;
  return x * p / q;
}
// sigmoid(x) = (1 + tanh(x / 2)) / 2: the same rational function, exactly 0 and 1 beyond |x| = 18.
LSTMKIT_INLINE float sigmoid(float x) { return 0.5f + 0.5f * tanh_(0.5f * x); }

// Double (gradcheck, not speed) takes the library's functions.
LSTMKIT_INLINE double tanh_(double x) { return std::tanh(x); }
LSTMKIT_INLINE double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

// n values of 0 (which = 0) or 1 (which = 1): the edit (keep 1, value 0) of a record without one. Per thread, so
// rows in parallel need no lock.
template <typename acc_t>
inline const acc_t* constant_row(int64_t n, int which) {
  thread_local std::vector<acc_t> rows[2];
  std::vector<acc_t>& row = rows[which];
  if (static_cast<int64_t>(row.size()) < n) row.assign(n, acc_t(which));
  return row.data();
}

// The value of an activated gate before its edit v' = k v + e, for the activation's derivative; any value where
// k = 0 (that derivative is then multiplied by 0).
template <typename acc_t>
LSTMKIT_INLINE acc_t unedited(acc_t v, acc_t k, acc_t e) {
  return k != acc_t(0) ? (v - e) / k : acc_t(0);
}

}  // namespace lstmkit
