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
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

namespace lstmkit {

#if defined(__AVX512F__)
constexpr int kVectorBytes = 64;
constexpr int kPanelVectors = 4;  // 4 rows x 4 vectors: 16 accumulators of 32 registers
#elif defined(__AVX__)
constexpr int kVectorBytes = 32;
constexpr int kPanelVectors = 2;  // 4 x 2: 8 accumulators of 16 registers, room for the loads
#else
constexpr int kVectorBytes = 16;
constexpr int kPanelVectors = 2;
#endif
constexpr int kRows = 4;  // rows of a per microkernel block

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
    for (const Panel& p : panels_) {
      int64_t m = 0;
      for (; m + kRows <= M; m += kRows) block<kRows>(p, a + m * lda, lda, out + m * ldo + p.n0, ldo);
      switch (M - m) {
        case 3:
          block<3>(p, a + m * lda, lda, out + m * ldo + p.n0, ldo);
          break;
        case 2:
          block<2>(p, a + m * lda, lda, out + m * ldo + p.n0, ldo);
          break;
        case 1:
          block<1>(p, a + m * lda, lda, out + m * ldo + p.n0, ldo);
          break;
        default:
          break;
      }
    }
  }

 private:
  struct Panel {
    int64_t n0, cols;  // first column, columns
    int vectors;       // width in vectors (cols rounded up)
    int64_t offset;    // into packed_: K rows of vectors * kLanes values
  };

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

}  // namespace lstmkit
