// The pointwise math every cell shares: exp, sigmoid and tanh in forms the compiler vectorises inside
// `omp simd` loops (lstm_cell.h, gru_rnn_cell.h).
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

namespace lstmkit {

// exp for float that the compiler vectorises (std::exp does not without -ffast-math/libmvec): Cephes' expf,
// exp(x) = 2^n * exp(r), |r| <= ln2/2, max error ~2 ulp. Double uses std::exp (fp64 is for gradcheck, not speed).
// Always inlined: called inside `omp simd` loops, where an out-of-line call would stop vectorisation (GCC
// declined to inline it on its own once the plain cell's pass grew).
#define LSTMKIT_INLINE inline __attribute__((always_inline))

LSTMKIT_INLINE float fast_exp(float x) {
  x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);  // ternaries, not std::fmin: they vectorise
  const float magic = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer without a rounding instruction
  float n = (x * 1.44269504088896341f + magic) - magic;
  float r = x - n * 0.693359375f + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
  float scale;
  std::memcpy(&scale, &bits, sizeof(scale));
  return p * scale;
}
LSTMKIT_INLINE double fast_exp(double x) { return std::exp(x); }

template <typename T> LSTMKIT_INLINE T sigmoid(T x) { return T(1) / (T(1) + fast_exp(-x)); }
// tanh(x) = 1 - 2 / (exp(2x) + 1): saturates correctly at both ends; absolute error ~1e-7 near 0 in float.
template <typename T> LSTMKIT_INLINE T tanh_(T x) { return T(1) - T(2) / (fast_exp(T(2) * x) + T(1)); }

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
