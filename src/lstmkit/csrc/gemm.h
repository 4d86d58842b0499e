// The matrix products of the fused engine (lstm_layer.cpp, gru_rnn_layer.cpp), behind small helpers so the GEMM
// library is chosen in one place.
//
// ATen reaches three fast CPU GEMMs: MKL through at::mm_out (writes into a preallocated buffer), MKL's packed
// GEMM (mkl::_mkl_linear with a weight packed once by mkl::_mkl_reorder_linear_weight), and oneDNN
// (mkldnn::_linear_pointwise, with a weight reordered once by mkldnn::_reorder_linear_weight). torch exports no
// dnnl or MKL-pack symbols, so the last two go through the dispatcher.
//
// The library is chosen by measurement, not by CPU vendor: lstmkit/engines/fused/cpu.py times a per-step product
// with each once per process and takes oneDNN only where it wins clearly (LSTMKIT_GEMM=mkl|onednn overrides); the
// choice arrives here as `gemm` (0 MKL, 1 oneDNN, 2 resident: the per-step products on a weight packed once per
// call by small_gemm.h, with no library call per step, and MKL for the products over all steps). For bf16, `gemm` is
// oneDNN only with the "bf16" strategy (bf16 GEMMs measured faster; LSTMKIT_BF16 overrides), else MKL: a bf16 x bf16
// product is exact in fp32 and bf16 GEMMs accumulate in fp32 too, so with the MKL choice the bf16 products run as fp32
// GEMMs on the widened operands, the result rounded to bf16 as a bf16 GEMM's is: the same arithmetic, up to summation
// order. The weight grads (dA^T X, contracting over the T*B rows) always use at::mm: oneDNN's linear would need both
// operands transposed and copied first. measurements: BENCHMARKS.md, 'GEMM choice'
#pragma once

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <ATen/core/dispatch/Dispatcher.h>

#include <algorithm>
#include <optional>

#include "small_gemm.h"

namespace lstmkit {

enum class Gemm { Mkl = 0, OneDnn = 1, Resident = 2 };

namespace detail {

inline at::Tensor mkl_pack(const at::Tensor& w, int64_t batch) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("mkl::_mkl_reorder_linear_weight", "")
                       .typed<at::Tensor(const at::Tensor&, int64_t)>();
  return op.call(w, batch);
}

inline at::Tensor mkl_packed_linear(const at::Tensor& a, const at::Tensor& packed, const at::Tensor& w, int64_t batch) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("mkl::_mkl_linear", "")
                       .typed<at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                         const std::optional<at::Tensor>&, int64_t)>();
  return op.call(a, packed, w, std::nullopt, batch);
}

inline at::Tensor onednn_reorder(const at::Tensor& w, int64_t batch) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("mkldnn::_reorder_linear_weight", "")
                       .typed<at::Tensor(const at::Tensor&, std::optional<int64_t>)>();
  return op.call(w, batch);
}

inline at::Tensor onednn_linear(const at::Tensor& a, const at::Tensor& w) {
  static auto op =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow("mkldnn::_linear_pointwise", "")
          .typed<at::Tensor(const at::Tensor&, const at::Tensor&, const std::optional<at::Tensor>&, c10::string_view,
                            c10::List<std::optional<at::Scalar>>, std::optional<c10::string_view>)>();
  return op.call(a, w, std::nullopt, "none", c10::List<std::optional<at::Scalar>>(), std::nullopt);
}

}  // namespace detail

// A weight w (N, K) applied as a @ w^T to many (M, K) inputs with the same M, e.g. W_hh at every step: packed or
// reordered once for the chosen library, then each product runs on the packed form.
class StepWeight {
 public:
  StepWeight(Gemm gemm, const at::Tensor& w, int64_t M) : w_(w), M_(M) {
    // bf16: widened to fp32 and MKL-packed with the MKL choice (MKL has no packed bf16 GEMM), else oneDNN
    // reordered: at::mm_out's bf16 path (oneDNN without the reorder) was 1.1x (B=64) to 1.6x (B=1) slower per step.
    if (gemm == Gemm::Mkl && w.scalar_type() == at::kFloat) {
      kind_ = Kind::MklPacked;
      packed_ = detail::mkl_pack(w, M);
    } else if (gemm == Gemm::Mkl && w.scalar_type() == at::kBFloat16) {
      kind_ = Kind::MklPackedWidened;
      w_ = w.to(at::kFloat);
      packed_ = detail::mkl_pack(w_, M);
    } else if (gemm == Gemm::OneDnn ? w.scalar_type() != at::kDouble : w.scalar_type() == at::kBFloat16) {
      kind_ = Kind::OneDnnReordered;
      packed_ = detail::onednn_reorder(w, M);
    }
  }

  // a (M, K) -> a @ w^T (M, N). Returns `out` (M, N) filled, or a new tensor; callers use the return value.
  at::Tensor apply(const at::Tensor& a, at::Tensor& out) const {
    switch (kind_) {
      case Kind::MklPacked:
        return detail::mkl_packed_linear(a, packed_, w_, M_);
      case Kind::MklPackedWidened:
        return detail::mkl_packed_linear(a.to(at::kFloat), packed_, w_, M_).to(at::kBFloat16);
      case Kind::OneDnnReordered:
        return detail::onednn_linear(a, packed_);
      default:
        return at::mm_out(out, a, w_.t());
    }
  }

 private:
  enum class Kind { Plain, MklPacked, MklPackedWidened, OneDnnReordered };
  Kind kind_ = Kind::Plain;
  at::Tensor w_, packed_;
  int64_t M_;
};

// a @ b for a product done once per call, bf16 widened to fp32 with the MKL choice (see above).
inline at::Tensor matmul(Gemm gemm, const at::Tensor& a, const at::Tensor& b) {
  if (gemm == Gemm::Mkl && a.scalar_type() == at::kBFloat16) {
    return at::mm(a.to(at::kFloat), b.to(at::kFloat)).to(at::kBFloat16);
  }
  return at::mm(a, b);
}

// a (M, K) @ w (N, K)^T for a product done once per call (all T*B rows at once).
inline at::Tensor matmul_nt(Gemm gemm, const at::Tensor& a, const at::Tensor& w) {
  if (gemm == Gemm::OneDnn && a.scalar_type() != at::kDouble) return detail::onednn_linear(a.contiguous(), w);
  return matmul(gemm, a, w.t());
}

// out (M, N) = a (M, K) @ w (N, K)^T, into `out` (rows of a larger buffer): MKL writes there itself, other
// products (oneDNN's, bf16 widened) are copied in.
inline void matmul_nt_into(Gemm gemm, const at::Tensor& a, const at::Tensor& w, at::Tensor out) {
  if (gemm != Gemm::OneDnn && a.scalar_type() != at::kBFloat16) {
    at::mm_out(out, a, w.t());
  } else {
    out.copy_(matmul_nt(gemm, a, w));
  }
}

// acc += a @ b, acc in acc_t: for bfloat16 that is float, so the chunks' products are summed in float instead of
// being rounded to bfloat16 one by one. bf16 operands are widened with the MKL choice (exact, as matmul above
// does), else multiplied in bf16.
inline void add_matmul(Gemm gemm, at::Tensor& acc, const at::Tensor& a, const at::Tensor& b) {
  if (a.scalar_type() == acc.scalar_type()) {
    acc.addmm_(a, b);
  } else if (gemm == Gemm::Mkl) {
    acc.addmm_(a.to(acc.scalar_type()), b.to(acc.scalar_type()));
  } else {
    acc.add_(at::mm(a, b));
  }
}

// The weight gradients of a backward chunk: dW (GH, in) += d^T v for d (n, GH), v (n, in), with `in` the input or
// recurrent width. Where `in` is small, MKL's d^T v ran several times slower than the product's FLOPs need (AMD
// EPYC, AVX2, T*B = 1024 rows: 386 us at in = 6, GH = 128 and 633 us at in = 8, GH = 256, against 37-40 us and
// 125-160 us for small_gemm.h's add_at_b, which sums the transpose (in, GH) += v^T d with the columns split
// between threads; docs/bench/2026-12-02-avx2-{weight-grads,small-gemm}.txt). At in = 16-32 the two tied
// (164-213 against 174-216 us; 813-841 against 794 us at GH = 512), at in = 64 MKL was faster (561 against
// 665-1310 us), hence the bound. (MKL's own transposed sums were fast too, but their rounding changed with the
// thread count.) The total is kept in the orientation its sums take (WeightGrad::transposed), and result() gives
// dW (GH, in).
constexpr int64_t kOwnWeightGradWidth = 32;

class WeightGrad {
 public:
  // gh x in, accumulated in acc's options; `operands`: the dtype of d and v (add_at_b needs them in acc's).
  WeightGrad(int64_t gh, int64_t in, const at::TensorOptions& acc, at::ScalarType operands)
      : transposed_(in <= kOwnWeightGradWidth && operands == acc.dtype().toScalarType() &&
                    (operands == at::kFloat || operands == at::kDouble)),
        total_(transposed_ ? at::zeros({in, gh}, acc) : at::zeros({gh, in}, acc)) {}

  // total += d^T v, d (n, GH) and v (n, in) with unit column strides (rows of a chunk's buffers).
  void add(Gemm gemm, const at::Tensor& d, const at::Tensor& v) {
    if (!transposed_) {
      add_matmul(gemm, total_, d.t(), v);
      return;
    }
    TORCH_CHECK(d.stride(1) == 1 && v.stride(1) == 1, "lstmkit: WeightGrad::add needs rows with unit column strides");
    AT_DISPATCH_FLOATING_TYPES(total_.scalar_type(), "lstmkit_weight_grad", [&] {
      const int64_t n = v.size(0), in = v.size(1), gh = d.size(1);
      constexpr int64_t kCols = add_at_b_columns<scalar_t>();
      const scalar_t* vp = v.data_ptr<scalar_t>();
      const scalar_t* dp = d.data_ptr<scalar_t>();
      scalar_t* out = total_.data_ptr<scalar_t>();
      at::parallel_for(0, (gh + kCols - 1) / kCols, 1, [&](int64_t p0, int64_t p1) {
        add_at_b<scalar_t>(vp, v.stride(0), dp, d.stride(0), n, in, p0 * kCols, std::min(gh, p1 * kCols), out, gh);
      });
    });
  }

  // dW (GH, in).
  at::Tensor result() const { return transposed_ ? total_.t().contiguous() : total_; }

 private:
  bool transposed_;
  at::Tensor total_;
};

}  // namespace lstmkit
