// The matrix products of the LSTM engine, behind one function so the GEMM library is chosen in one place.
//
// Two routes reach a fast fp32 GEMM from ATen on CPU:
//   - MKL, through at::mm_out into a preallocated buffer (no allocation per step);
//   - oneDNN, through the registered op mkldnn::_linear_pointwise (allocates its result; torch exports no dnnl
//     symbols, so the dispatcher is the only way in).
// Measured (torch 2.13.0, 2 threads, GFLOP/s, median of 20):
//   Intel Xeon (AVX-512) dev box:  B x 512 x 2048 (per step, B=64): mm_out 250, oneDNN 263
//                                  6400 x 512 x 2048 (input proj.):  mm_out 328, oneDNN 235
//                                  bf16: every route ~155-175 (mm_out routes bf16 to oneDNN itself)
//   AMD EPYC (project facts):      torch.mm (MKL) ~210, oneDNN linear ~430-450 (MKL's slow path on AMD)
// So the choice depends on the CPU vendor; fused.py picks it (LSTMKIT_GEMM=mkl|onednn|auto overrides) and the
// engine only ever calls matmul_nt. fp64 and the weight-gradient products (one each per call, not per step)
// always use MKL, which serves them at full speed on both CPUs for these shapes.
#pragma once

#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>

namespace lstmkit {

enum class Gemm { Mkl = 0, OneDnn = 1 };

inline at::Tensor onednn_linear(const at::Tensor& a, const at::Tensor& w) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("mkldnn::_linear_pointwise", "")
                       .typed<at::Tensor(const at::Tensor&, const at::Tensor&, const std::optional<at::Tensor>&,
                                         c10::string_view, c10::List<std::optional<at::Scalar>>,
                                         std::optional<c10::string_view>)>();
  return op.call(a, w, std::nullopt, "none", c10::List<std::optional<at::Scalar>>(), std::nullopt);
}

// a (M, K) @ w (N, K)^T -> (M, N). With MKL the result is written into `out` (M, N) and `out` is returned; with
// oneDNN a new tensor is returned. Callers use the return value either way.
inline at::Tensor matmul_nt(Gemm gemm, const at::Tensor& a, const at::Tensor& w, at::Tensor& out) {
  if (gemm == Gemm::OneDnn && a.scalar_type() != at::kDouble) {
    return onednn_linear(a, w);
  }
  return at::mm_out(out, a, w.t());
}

}  // namespace lstmkit
