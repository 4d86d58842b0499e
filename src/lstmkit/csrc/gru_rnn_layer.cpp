// One GRU or Elman RNN layer in one direction, time-major, forward and hand-written BPTT (the contract is in
// lstmkit/engines/fused/gru_rnn.py; the pointwise half of each step in gru_rnn_cell.h).
//
// The algorithm is the LSTM engine's (lstm_layer.cpp): a_x = X W_ih^T for all T*B rows at once; per step one GEMM
// a_h = h_in W_hh^T and one pointwise pass over the rows in parallel. Backward in chunks of K steps from the last:
// per step the pointwise pass and one GEMM dA_h W_hh; per chunk its share of dW_ih, dW_hh and dX as GEMMs over its
// rows, of db as sums. The GRU needs two gradients per step because r multiplies a_h,n: dA_x = (da_r, da_z, da_n)
// and dA_h = (da_r, da_z, r ⊙ da_n). No atomics, no cross-thread accumulation, chunks added in a fixed order:
// bitwise the same result on every run.
//
// The arguments arrive prepared by lstmkit/engines/fused/gru_rnn.py (layers.h gives their shapes): contiguous, x's
// dtype for x, h0 and the weights, the accumulation dtype (float for bfloat16, else x's) for the biases (zeros when
// absent) and the masks.

#include <ATen/ATen.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>

#include <optional>
#include <type_traits>
#include <vector>

#include "aten_util.h"
#include "buffers.h"
#include "gemm.h"
#include "gru_rnn_cell.h"
#include "layers.h"
#include "small_gemm.h"

namespace lstmkit {

namespace {

// Gates per cell: G, so the gates' width GH = G * H.
int64_t gates_of(CellKind kind) { return kind == CellKind::Gru ? 3 : 1; }

// What forward saves for backward (hn, hseq: GRU only, else undefined).
struct Saved {
  Tensor hin, gates, hn, hseq;
};

// The GruRnnLayer view both passes share: sizes, options and saved buffers. Forward then points it at the biases,
// its state and outputs, backward at its grads.
template <typename scalar_t, typename acc_t>
GruRnnLayer<scalar_t, acc_t> make_layer(const GruRnnOptions& o, int64_t T, int64_t B, int64_t H, const Saved& s) {
  const CellKind kind = static_cast<CellKind>(o.cell);
  GruRnnLayer<scalar_t, acc_t> L{};
  L.T = T, L.B = B, L.H = H, L.GH = gates_of(kind) * H, L.kind = kind;
  L.mask = data_or_null<acc_t>(o.recurrent_mask);
  L.z_h = data_or_null<acc_t>(o.z_h);
  L.zp = static_cast<acc_t>(given(o.z_h) ? 0.0 : o.zoneout_p);
  L.lengths = data_or_null<int64_t>(o.lengths);
  L.save = o.save, L.records = o.records || o.save;
  L.hin = s.hin.data_ptr<scalar_t>(), L.gates = s.gates.data_ptr<acc_t>();
  L.hn = data_or_null<acc_t>(s.hn), L.hseq = data_or_null<acc_t>(s.hseq);
  const int64_t G = gates_of(kind), edited = static_cast<int64_t>(o.edit_keep.size());  // gates, then h
  for (int64_t k = 0; k < G; ++k) {
    L.eg_k[k] = k < edited ? data_or_null<acc_t>(o.edit_keep[k]) : nullptr;
    L.eg_v[k] = k < edited ? data_or_null<acc_t>(o.edit_value[k]) : nullptr;
  }
  L.eh_k = G < edited ? data_or_null<acc_t>(o.edit_keep[G]) : nullptr;
  L.eh_v = G < edited ? data_or_null<acc_t>(o.edit_value[G]) : nullptr;
  return L;
}

}  // namespace

// Returns y (T, B, H), h_n (B, H), gates (T, B, GH: the records), then what backward needs: hin, hn and hseq
// (GRU only). Without `save` (no backward to come) hin holds two steps (this one and the next) and hn one; without
// `records` either, the gates hold one step and come back empty (0, B, GH).
std::vector<Tensor> gru_rnn_forward(const Tensor& x, const Tensor& h0, const Tensor& w_ih, const Tensor& w_hh,
                                    const Tensor& b_ih, const Tensor& b_hh, const GruRnnOptions& o) {
  const CellKind kind = static_cast<CellKind>(o.cell);
  const Gemm gemm = static_cast<Gemm>(o.gemm);
  const bool save = o.save, records = o.records || o.save;
  const int64_t T = x.size(0), B = x.size(1), I = x.size(2), GH = w_ih.size(0), H = w_hh.size(1);
  auto so = x.options();
  auto ao = b_ih.options();
  Tensor y = empty_big({T, B, H}, so);
  Tensor h = h0.to(ao.dtype(), /*non_blocking=*/false, /*copy=*/true);
  const bool gru = kind == CellKind::Gru;
  Tensor gates_buf = cached_empty({records ? T : 1, B, GH}, ao);
  Tensor gates = records ? gates_buf : at::empty({0, B, GH}, ao);
  Tensor hn = gru ? cached_empty({save ? T : 1, B, H}, ao) : Tensor();
  Tensor hseq = gru && save ? cached_empty({T, B, H}, ao) : Tensor();
  Tensor hin = cached_empty({save ? T : 2, B, H}, so);
  if (T == 0) return {y, h.to(x.scalar_type()), gates, hin, hn, hseq};
  // a_x = x W_ih^T (T * B, GH), as in lstm_layer.cpp: MKL writes into reused memory (fresh memory is faulted in
  // each call), oneDNN's product is its own tensor, used as it is.
  Tensor ax;
  if (gemm != Gemm::OneDnn) {
    ax = cached_empty({T * B, GH}, so);
    matmul_nt_into(gemm, x.reshape({T * B, I}), w_ih, ax);
  } else {
    ax = matmul_nt(gemm, x.reshape({T * B, I}), w_ih);
  }
  hin.select(0, 0).copy_(given(o.recurrent_mask) ? h0 * *o.recurrent_mask : h0);
  Tensor ah_buf = at::empty({B, GH}, so);
  const StepWeight W_hh(gemm, w_hh, B);

  AT_DISPATCH_FLOATING_TYPES_AND(at::kBFloat16, x.scalar_type(), "lstmkit_gru_rnn_forward", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    auto L = make_layer<scalar_t, acc_t>(o, T, B, H, Saved{hin, gates_buf, hn, hseq});
    L.b_ih = b_ih.data_ptr<acc_t>(), L.b_hh = b_hh.data_ptr<acc_t>();
    L.ax = ax.data_ptr<scalar_t>(), L.y = y.data_ptr<scalar_t>(), L.h = h.data_ptr<acc_t>();
    // Resident weights (small_gemm.h): each thread runs every step of its own batch rows, no library call per
    // step. Generic, so that `if constexpr` drops the body for bf16 (ResidentWeight is fp32 and fp64 only).
    auto run_resident = [&](auto* type) {
      using elem_t = std::remove_pointer_t<decltype(type)>;
      if constexpr (std::is_same_v<elem_t, acc_t>) {
        const ResidentWeight<elem_t> W_hh_r(w_hh.data_ptr<elem_t>(), GH, H);  // (GH, H)
        elem_t* ah = ah_buf.data_ptr<elem_t>();                               // (B, GH)
        at::parallel_for(0, B, resident_grain(), [&](int64_t b0, int64_t b1) {
          std::vector<acc_t> scratch(H);
          for (int64_t t = 0; t < T; ++t) {
            W_hh_r.apply(L.hin + L.hrow(t, b0) * H, H, b1 - b0, ah + b0 * GH, GH);
            for (int64_t b = b0; b < b1; ++b) gru_rnn_forward_row(L, t, b, ah + b * GH, scratch.data());
          }
        });
        return true;
      } else {
        return false;
      }
    };
    if (gemm == Gemm::Resident) {
      TORCH_CHECK(run_resident(static_cast<scalar_t*>(nullptr)), "lstmkit: resident weights are for fp32 and fp64");
      return;
    }
    for (int64_t t = 0; t < T; ++t) {
      Tensor ah = W_hh.apply(hin.select(0, save ? t : t % 2), ah_buf);  // (B, GH)
      const scalar_t* ah_p = ah.data_ptr<scalar_t>();
      at::parallel_for(0, B, grain(GH), [&](int64_t b0, int64_t b1) {
        std::vector<acc_t> scratch(H);
        for (int64_t b = b0; b < b1; ++b) gru_rnn_forward_row(L, t, b, ah_p + b * GH, scratch.data());
      });
    }
  });
  return {y, h.to(x.scalar_type()), gates, hin, hn, hseq};
}

// Returns dx (undefined unless need_dx), dh0, dw_ih, dw_hh, db_ih, db_hh (undefined without bias; in the
// accumulation dtype).
std::vector<Tensor> gru_rnn_backward(const OptTensor& dy, const OptTensor& dh_n, const Tensor& x, const Tensor& h0,
                                     const Tensor& w_ih, const Tensor& w_hh, const Tensor& hin, const Tensor& gates,
                                     const OptTensor& hn, const OptTensor& hseq, bool need_dx, const GruRnnOptions& o) {
  TORCH_CHECK(o.save, "lstmkit: backward of a forward that did not save (GruRnnOptions.save = False)");
  const CellKind kind = static_cast<CellKind>(o.cell);
  const Gemm gemm = static_cast<Gemm>(o.gemm);
  const bool has_bias = o.has_bias;
  const int64_t T = x.size(0), B = x.size(1), I = x.size(2), GH = w_ih.size(0), H = w_hh.size(1);
  auto so = x.options();
  auto ao = gates.options();
  const bool gru = kind == CellKind::Gru;
  Tensor dh_keep = given(dh_n) ? dh_n->to(ao.dtype(), false, true) : at::zeros({B, H}, ao);  // (B, H)
  // In chunks of K steps from the last, as the LSTM's backward: only a chunk's dA_x, dA_h exist at a time, and
  // its share of dX, dW_ih, dW_hh and db is added once its steps are done, chunks always in the same order.
  const int64_t K = chunk_steps(T, B);
  Tensor dax = cached_empty({K, B, GH}, so);
  Tensor dah = gru ? cached_empty({K, B, GH}, so) : dax;
  Tensor dx = need_dx ? empty_big({T, B, I}, so) : Tensor();
  Tensor w_ih_t = need_dx ? w_ih.t().contiguous() : Tensor();                       // (I, GH)
  WeightGrad dw_ih(GH, I, ao, x.scalar_type()), dw_hh(GH, H, ao, x.scalar_type());  // totals in acc_t
  Tensor db_ih = has_bias ? at::zeros({GH}, ao) : Tensor(), db_hh = has_bias && gru ? at::zeros({GH}, ao) : Tensor();
  auto accumulate_chunk = [&](int64_t t0, int64_t t1) {
    const int64_t n = (t1 - t0) * B;  // rows
    Tensor dax_k = dax.view({K * B, GH}).slice(0, 0, n), dah_k = dah.view({K * B, GH}).slice(0, 0, n);
    if (need_dx) matmul_nt_into(gemm, dax_k, w_ih_t, dx.slice(0, t0, t1).view({n, I}));
    dw_ih.add(gemm, dax_k, x.slice(0, t0, t1).view({n, I}));
    dw_hh.add(gemm, dah_k, hin.slice(0, t0, t1).view({n, H}));
    if (has_bias) {
      db_ih.add_(dax_k.to(ao.dtype()).sum(0));
      if (gru) db_hh.add_(dah_k.to(ao.dtype()).sum(0));
    }
  };
  const Tensor w_hh_t = w_hh.t().contiguous();  // (H, GH)
  const StepWeight W_hh_t(gemm, w_hh_t, B);
  Tensor dhg_buf = at::empty({B, H}, so);
  Tensor dhg;  // (B, H) dA_h(t+1) W_hh; undefined before the first step
  Tensor h0_acc = h0.to(ao.dtype());

  AT_DISPATCH_FLOATING_TYPES_AND(at::kBFloat16, x.scalar_type(), "lstmkit_gru_rnn_backward", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    auto L = make_layer<scalar_t, acc_t>(o, T, B, H, Saved{hin, gates, or_undefined(hn), or_undefined(hseq)});
    L.h0 = h0_acc.data_ptr<acc_t>();
    L.dy = data_or_null<scalar_t>(dy);
    L.dh_keep = dh_keep.data_ptr<acc_t>();
    L.dax = dax.data_ptr<scalar_t>(), L.dah = dah.data_ptr<scalar_t>();
    auto run_resident = [&](auto* type) {  // as in forward
      using elem_t = std::remove_pointer_t<decltype(type)>;
      if constexpr (std::is_same_v<elem_t, acc_t>) {
        const ResidentWeight<elem_t> W_hh_r(w_hh_t.data_ptr<elem_t>(), H, GH);  // (H, GH)
        elem_t* dhg_p = dhg_buf.data_ptr<elem_t>();                             // (B, H) dA_h(t+1) W_hh
        for (int64_t t1 = T; t1 > 0; t1 -= K) {
          const int64_t t0 = std::max<int64_t>(0, t1 - K);
          L.t0 = t0;
          at::parallel_for(0, B, resident_grain(), [&](int64_t b0, int64_t b1) {
            for (int64_t t = t1 - 1; t >= t0; --t) {
              const bool last = t == T - 1;  // no dA_h(t+1) yet
              for (int64_t b = b0; b < b1; ++b) gru_rnn_backward_row(L, t, b, last ? nullptr : dhg_p + b * H);
              W_hh_r.apply(L.dah + L.crow(t, b0) * GH, GH, b1 - b0, dhg_p + b0 * H, H);
            }
          });
          accumulate_chunk(t0, t1);
        }
        dhg = dhg_buf;
        return true;
      } else {
        return false;
      }
    };
    if (gemm == Gemm::Resident) {
      TORCH_CHECK(run_resident(static_cast<scalar_t*>(nullptr)), "lstmkit: resident weights are for fp32 and fp64");
      return;
    }
    for (int64_t t1 = T; t1 > 0; t1 -= K) {  // chunks [t0, t1), the last first
      const int64_t t0 = std::max<int64_t>(0, t1 - K);
      L.t0 = t0;
      for (int64_t t = t1 - 1; t >= t0; --t) {
        const scalar_t* dhg_p = dhg.defined() ? dhg.data_ptr<scalar_t>() : nullptr;
        at::parallel_for(0, B, grain(GH), [&](int64_t b0, int64_t b1) {
          for (int64_t b = b0; b < b1; ++b) gru_rnn_backward_row(L, t, b, dhg_p ? dhg_p + b * H : nullptr);
        });
        dhg = W_hh_t.apply(dah.select(0, t - t0), dhg_buf);  // (B, H), for step t - 1
      }
      accumulate_chunk(t0, t1);
    }
  });

  // The grad of h0: the kept part plus the recurrent GEMM's, through the mask.
  Tensor dh_in = dhg.defined() ? dhg.to(ao.dtype()) : at::zeros({B, H}, ao);
  if (given(o.recurrent_mask)) dh_in = dh_in * *o.recurrent_mask;
  Tensor dh0 = (dh_keep + dh_in).to(x.scalar_type());
  if (has_bias && !gru) db_hh = db_ih;  // the RNN's a_x and a_h have the same grad
  auto in_x_dtype = [&](const Tensor& g) { return g.to(x.scalar_type()); };
  return {dx, dh0, in_x_dtype(dw_ih.result()), in_x_dtype(dw_hh.result()), db_ih, db_hh};
}

}  // namespace lstmkit
