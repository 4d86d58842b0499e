// Small ATen helpers the layer files share.
#pragma once

#include <ATen/ATen.h>

#include <algorithm>
#include <optional>

#include "buffers.h"

namespace lstmkit {

using OptTensor = std::optional<at::Tensor>;

inline bool given(const OptTensor& t) { return t.has_value() && t->defined(); }
inline at::Tensor or_undefined(const OptTensor& t) { return t.value_or(at::Tensor()); }

template <typename T> T* data_or_null(const at::Tensor& t) { return t.defined() ? t.data_ptr<T>() : nullptr; }
template <typename T> T* data_or_null(const OptTensor& t) { return given(t) ? t->data_ptr<T>() : nullptr; }

// at::empty for an output handed to the caller (y), advised for 2 MB pages before its first touch: it is fresh
// memory each call (glibc maps anything over 32 MB anew), and with 4 KB pages the page faults took ~10% of a
// T=100, B=64, H=512 forward (perf: kernel time). The engine's own buffers come from the cache (buffers.h).
inline at::Tensor empty_big(at::IntArrayRef sizes, const at::TensorOptions& options) {
  at::Tensor t = at::empty(sizes, options);
  advise_huge_pages(t.data_ptr(), t.nbytes());
  return t;
}

// Rows per parallel chunk of a pointwise pass over n features: enough work that a thread hand-off (~a few us)
// does not dominate small layers.
inline int64_t grain(int64_t n) { return std::max<int64_t>(1, 8192 / n); }

// Batch rows per thread at least, where each thread runs every step of its rows on resident weights
// (small_gemm.h): two microkernel blocks of rows. There is one hand-off per chunk of steps, not per step, so
// even small batches are worth splitting.
inline int64_t resident_grain() { return 8; }

}  // namespace lstmkit
