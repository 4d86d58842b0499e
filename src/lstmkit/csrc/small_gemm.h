// The small per-step products of the fused engine (h_in W_hh^T, h_raw W_hr^T, dA_h W_hh, dh_new W_hr) on a
// weight kept packed and resident for the whole call, with no library call per step.
//
// Why: at the memory lab's shapes (H = 32-128, B = 1-64) a step's product is 16k-2M multiply-adds, a few
// microseconds of arithmetic, and each library call (MKL's packed GEMM through the dispatcher, oneDNN's linear)
// costs a fixed 3-16 us besides, so the engine ran at 5-20% of the FMA peak. Here the weight w (N, K) is packed
// once per call into column panels (K rows of kPanel columns, zero-padded), and a register-blocked microkernel
// (kRows rows of a x up to kPanelVectors vectors of columns, the accumulators in registers) walks k in order. The
// loops are written with GCC/Clang vector types of this build's widest vectors (-march from build.py: 16 floats
// with AVX-512, 8 with AVX2), which the compiler turns into broadcast + FMA; no small-GEMM library is kept (libxsmm
// would need a JIT and a dependency for products this plain; measurements: BENCHMARKS.md, 'Small shapes').
//
// Each output element is one sum over k in increasing order, whatever the row block, the panel or the thread:
// results are bitwise the same for any split of the rows between threads, and on every run.
//
// add_at_b, at the end, is the backward's other small product: the weight gradients v^T dA where v is narrow
// (csrc/gemm.h, WeightGrad, says where and why).
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

namespace lstmkit {

#define LSTMKIT_SMALL_INLINE inline __attribute__((always_inline))

// The block of one microkernel call: kRows rows of a x kPanelVectors vectors of columns, its kRows * kPanelVectors
// accumulators in registers with room for the weight vectors and a broadcast of a. LSTMKIT_BLOCK=rows,vectors
// replaces it (benchmarks/small_gemm.cpp compares blocks that way).
#if defined(__AVX512F__)
constexpr int kVectorBytes = 64;
#define LSTMKIT_DEFAULT_BLOCK 4, 4  // 16 accumulators of 32 registers
#elif defined(__AVX__)
constexpr int kVectorBytes = 32;
// 6 x 2: 12 accumulators, 2 weight vectors and a broadcast in 16 registers. 4 x 2 (8 accumulators) leaves the two
// FMA pipes waiting on their latency: on the AMD EPYC with AVX2, one thread, products of 16-32 rows x 32-256 by
// 64-512 ran at 33-47 GFLOP/s with 4 x 2 and 38-72 with 6 x 2 (docs/bench/2026-12-02-avx2-small-gemm.txt; the
// VM's noise is +-30%); 4 x 3 and 3 x 4 spilled registers (12-17 GFLOP/s in a first try).
#define LSTMKIT_DEFAULT_BLOCK 6, 2
#else
constexpr int kVectorBytes = 16;
#define LSTMKIT_DEFAULT_BLOCK 4, 2
#endif
#ifndef LSTMKIT_BLOCK
#define LSTMKIT_BLOCK LSTMKIT_DEFAULT_BLOCK
#endif
constexpr int kBlock[2] = {LSTMKIT_BLOCK};
constexpr int kRows = kBlock[0];  // rows of a per microkernel block
constexpr int kPanelVectors = kBlock[1];

// The vector type of T (GCC ignores vector_size on a dependent type, hence one specialisation per type).
template <typename T> struct Vector;
template <> struct Vector<float> {
  typedef float type __attribute__((vector_size(kVectorBytes)));
};
template <> struct Vector<double> {
  typedef double type __attribute__((vector_size(kVectorBytes)));
};

// out (M, N) = a (M, K) @ w (N, K)^T for any M, w packed once. T: float or double.
template <typename T>
class ResidentWeight {
 public:
  using vec = typename Vector<T>::type;
  static constexpr int kLanes = kVectorBytes / sizeof(T);
  static constexpr int kPanel = kPanelVectors * kLanes;  // columns per full panel

  ResidentWeight() = default;

  // w: (N, K), rows of K contiguous values.
  ResidentWeight(const T* w, int64_t N, int64_t K) : N_(N), K_(K) {
    // Panels of kPanel columns, the last one narrower (whole vectors, zero-padded past N).
    for (int64_t n0 = 0; n0 < N; n0 += kPanel) {
      const int64_t cols = std::min<int64_t>(kPanel, N - n0);
      panels_.push_back({n0, cols, int((cols + kLanes - 1) / kLanes), int64_t(packed_.size())});
      const int64_t width = panels_.back().vectors * kLanes;
      packed_.resize(packed_.size() + K * width, T(0));
      T* p = packed_.data() + panels_.back().offset;
      for (int64_t k = 0; k < K; ++k)
        for (int64_t n = 0; n < cols; ++n) p[k * width + n] = w[(n0 + n) * K + k];
    }
  }

  int64_t N() const { return N_; }

  // out rows m (stride ldo) = a rows m (stride lda) @ w^T, for m in [0, M).
  void apply(const T* a, int64_t lda, int64_t M, T* out, int64_t ldo) const {
    int64_t m = 0;
    for (; m + kRows <= M; m += kRows)
      for (const Panel& p : panels_) block<kRows>(p, a + m * lda, lda, out + m * ldo + p.n0, ldo);
    if (m < M && !panels_.empty()) rest<kRows - 1>(M - m, a + m * lda, lda, out + m * ldo, ldo);
  }

 private:
  struct Panel {
    int64_t n0, cols;  // first column, columns
    int vectors;       // width in vectors (cols rounded up)
    int64_t offset;    // into packed_: K rows of vectors * kLanes values
  };

  // The last rows (fewer than kRows: `left`), every panel. With fewer rows a block has fewer accumulators, and
  // one panel's would leave the FMA pipes waiting on their latency (a batch of 1: two accumulators, at most a
  // quarter of the peak), so kRows / MR full panels go through one microkernel together: as many accumulators as
  // a full block.
  template <int MR>
  void rest(int64_t left, const T* a, int64_t lda, T* out, int64_t ldo) const {
    if constexpr (MR > 0) {
      if (left != MR) return rest<MR - 1>(left, a, lda, out, ldo);
      constexpr int kTogether = kRows / MR;
      const size_t full = panels_.back().cols == kPanel ? panels_.size() : panels_.size() - 1;  // all columns
      size_t q = 0;
      if constexpr (kTogether > 1)
        for (; q + kTogether <= full; q += kTogether) together<MR, kTogether>(q, a, lda, out + panels_[q].n0, ldo);
      for (; q < panels_.size(); ++q) block<MR>(panels_[q], a, lda, out + panels_[q].n0, ldo);
    }
  }

  // MR rows of a times the NP full panels from panel q: MR x NP x kPanelVectors accumulators, one pass over k.
  template <int MR, int NP>
  void together(size_t q, const T* __restrict a, int64_t lda, T* __restrict out, int64_t ldo) const {
    constexpr int NV = NP * kPanelVectors;
    vec acc[MR][NV];
    for (int r = 0; r < MR; ++r)
      for (int v = 0; v < NV; ++v) acc[r][v] = vec{};
    const T* __restrict w = packed_.data() + panels_[q].offset;  // full panels lie one after another
    const int64_t stride = K_ * kPanel;                          // from one panel to the next
    for (int64_t k = 0; k < K_; ++k) {
      T ak[MR];
      for (int r = 0; r < MR; ++r) ak[r] = a[r * lda + k];
      for (int v = 0; v < NV; ++v) {  // one weight vector live at a time: the accumulators take the registers
        vec wv;
        std::memcpy(&wv, w + (v / kPanelVectors) * stride + (k * kPanelVectors + v % kPanelVectors) * kLanes,
                    kVectorBytes);
        for (int r = 0; r < MR; ++r) acc[r][v] += ak[r] * wv;
      }
    }
    for (int r = 0; r < MR; ++r)
      for (int v = 0; v < NV; ++v) std::memcpy(out + r * ldo + int64_t(v) * kLanes, &acc[r][v], kVectorBytes);
  }

  template <int MR>
  void block(const Panel& p, const T* a, int64_t lda, T* out, int64_t ldo) const {
    switch (p.vectors) {
      case 1:
        microkernel<MR, 1>(p, a, lda, out, ldo);
        break;
      case 2:
        microkernel<MR, 2>(p, a, lda, out, ldo);
        break;
      case 3:
        if constexpr (kPanelVectors >= 3) microkernel<MR, 3>(p, a, lda, out, ldo);
        break;
      case 4:
        if constexpr (kPanelVectors >= 4) microkernel<MR, 4>(p, a, lda, out, ldo);
        break;
      default:
        break;
    }
  }

  // MR rows of a times one panel of NV vectors: MR x NV accumulators, one pass over k.
  template <int MR, int NV>
  void microkernel(const Panel& p, const T* __restrict a, int64_t lda, T* __restrict out, int64_t ldo) const {
    vec acc[MR][NV];
    for (int r = 0; r < MR; ++r)
      for (int v = 0; v < NV; ++v) acc[r][v] = vec{};
    const T* __restrict w = packed_.data() + p.offset;
    for (int64_t k = 0; k < K_; ++k) {
      vec wk[NV];
      for (int v = 0; v < NV; ++v) std::memcpy(&wk[v], w + (k * NV + v) * kLanes, kVectorBytes);
      for (int r = 0; r < MR; ++r) {
        const T ar = a[r * lda + k];
        for (int v = 0; v < NV; ++v) acc[r][v] += ar * wk[v];
      }
    }
    for (int r = 0; r < MR; ++r) {
      for (int v = 0; v < NV; ++v) {
        const int64_t n = int64_t(v) * kLanes, left = p.cols - n;
        if (left >= kLanes) {
          std::memcpy(out + r * ldo + n, &acc[r][v], kVectorBytes);
        } else {
          T lanes[kLanes];
          std::memcpy(lanes, &acc[r][v], kVectorBytes);
          std::memcpy(out + r * ldo + n, lanes, left * sizeof(T));
        }
      }
    }
  }

  int64_t N_ = 0, K_ = 0;
  std::vector<Panel> panels_;
  std::vector<T> packed_;
};

namespace detail {

// add_at_b's block: rows [m, m + MR) of out, columns [n, n + cols) (cols <= kPanelVectors vectors; kFull: exactly).
template <typename T, int MR, bool kFull>
LSTMKIT_SMALL_INLINE void add_at_b_block(const T* __restrict a, int64_t lda, const T* __restrict b, int64_t ldb,
                                         int64_t K, int64_t m, int64_t n, int64_t cols, T* __restrict out,
                                         int64_t ldo) {
  using vec = typename Vector<T>::type;
  constexpr int kLanes = kVectorBytes / sizeof(T);
  vec acc[MR][kPanelVectors];
  for (int r = 0; r < MR; ++r)
    for (int v = 0; v < kPanelVectors; ++v) acc[r][v] = vec{};
  for (int64_t k = 0; k < K; ++k) {
    const T* bk = b + k * ldb + n;
    vec bv[kPanelVectors];
    if constexpr (kFull) {
      for (int v = 0; v < kPanelVectors; ++v) std::memcpy(&bv[v], bk + v * kLanes, kVectorBytes);
    } else {
      T lanes[kPanelVectors * kLanes] = {};
      std::memcpy(lanes, bk, cols * sizeof(T));
      std::memcpy(bv, lanes, sizeof(lanes));
    }
    for (int r = 0; r < MR; ++r) {
      const T ar = a[k * lda + m + r];
      for (int v = 0; v < kPanelVectors; ++v) acc[r][v] += ar * bv[v];
    }
  }
  for (int r = 0; r < MR; ++r) {
    T lanes[kPanelVectors * kLanes];
    std::memcpy(lanes, acc[r], sizeof(lanes));
    T* o = out + (m + r) * ldo + n;
    for (int64_t j = 0; j < cols; ++j) o[j] += lanes[j];
  }
}

// The last rows of add_at_b_columns (fewer than kRows: `left`) as one block of that many.
template <typename T, int MR, bool kFull>
void add_at_b_rest(int64_t left, const T* a, int64_t lda, const T* b, int64_t ldb, int64_t K, int64_t m, int64_t n,
                   int64_t cols, T* out, int64_t ldo) {
  if constexpr (MR > 0) {
    if (left == MR) {
      add_at_b_block<T, MR, kFull>(a, lda, b, ldb, K, m, n, cols, out, ldo);
    } else {
      add_at_b_rest<T, MR - 1, kFull>(left, a, lda, b, ldb, K, m, n, cols, out, ldo);
    }
  }
}

// Columns [n, n + cols) of add_at_b, every row, in slices of kDepth rows of a and b (k) so that the slice of b's
// columns (kDepth x kPanelVectors vectors: 16 KB in float with AVX2) stays in L1 while every row block reads it.
template <typename T, bool kFull>
void add_at_b_columns(const T* a, int64_t lda, const T* b, int64_t ldb, int64_t K, int64_t M, int64_t n, int64_t cols,
                      T* out, int64_t ldo) {
  constexpr int64_t kDepth = 256;
  for (int64_t k0 = 0; k0 < K; k0 += kDepth) {
    const int64_t depth = std::min(kDepth, K - k0);
    const T* ak = a + k0 * lda;
    const T* bk = b + k0 * ldb;
    int64_t m = 0;
    for (; m + kRows <= M; m += kRows) add_at_b_block<T, kRows, kFull>(ak, lda, bk, ldb, depth, m, n, cols, out, ldo);
    if (m < M) add_at_b_rest<T, kRows - 1, kFull>(M - m, ak, lda, bk, ldb, depth, m, n, cols, out, ldo);
  }
}

}  // namespace detail

// out (M, N) += a^T b for a (K, M) and b (K, N), row-major with row strides lda, ldb, ldo: the weight gradients
// of the backward (dW^T += v^T dA over a chunk's rows; csrc/lstm_layer.cpp). Output columns [n0, n1) only, so
// threads can take disjoint column ranges (n0 a multiple of add_at_b_columns<T>()). Each output element gets its sums
// over slices of k in increasing order, each added to out as it ends: bitwise the same for any split of the columns.
// add_at_b's column block: a split of the columns between threads at multiples of it keeps the results bitwise the
// same (the blocks, and so every element's sums, are then the same for any split).
template <typename T>
constexpr int64_t add_at_b_columns() {
  return kPanelVectors * (kVectorBytes / sizeof(T));
}

template <typename T>
void add_at_b(const T* a, int64_t lda, const T* b, int64_t ldb, int64_t K, int64_t M, int64_t n0, int64_t n1, T* out,
              int64_t ldo) {
  constexpr int64_t kCols = add_at_b_columns<T>();
  int64_t n = n0;
  for (; n + kCols <= n1; n += kCols) detail::add_at_b_columns<T, true>(a, lda, b, ldb, K, M, n, kCols, out, ldo);
  if (n < n1) detail::add_at_b_columns<T, false>(a, lda, b, ldb, K, M, n, n1 - n, out, ldo);
}

}  // namespace lstmkit
