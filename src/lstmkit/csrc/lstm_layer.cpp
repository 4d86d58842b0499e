// One LSTM layer in one direction, time-major, forward and hand-written BPTT (see lstmkit/engines/fused/lstm.py for
// the equations and the Python-facing contract; lstm_cell.h for the pointwise half of each step).
//
// Forward:  a_x = X W_ih^T for all T*B rows at once (one GEMM); per step one GEMM a_h = h_in W_hh^T and one
//           pointwise pass over the batch rows in parallel (plus the projection GEMM and a short pass with proj).
//           It saves for backward h_in, the gates, c after each step, tanh(m) (and c' before zoneout, the
//           projection's input); with layer norm only the mean and rstd of a_x, a_h and c', not their normalised
//           values.
// Backward: in chunks of K steps from the last (K * B ~ 1024 rows, see chunk_steps). Per chunk: with layer
//           norm, a_x and a_h of its steps again (one GEMM each) and
//           their normalised values rebuilt from the saved moments; per step the pointwise pass and one GEMM
//           dh = dA_h W_hh (two with proj); then the chunk's share of dW_ih, dW_hh, dW_hr (GEMMs added to the
//           totals), of dX (a GEMM into its rows) and of db, dpeephole, dgamma (reductions added to the totals).
//           Only the chunk's dA, dA_x, dA_h, dm live at once, not (T, B, GH) of each.
// No atomics and no cross-thread accumulation, chunks always added in the same order: the same inputs give
// bitwise the same outputs on every run.
//
// The arguments arrive prepared by lstmkit/engines/fused/lstm.py (layers.h gives their shapes): contiguous, x's dtype
// for GEMM operands (x, h0, weights), the accumulation dtype acc_t (float for bfloat16, else x's dtype) for everything
// else; bias and peephole are always given (zeros when the layer has none).

#include <ATen/ATen.h>
#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>

#include <optional>
#include <type_traits>
#include <vector>

#include "aten_util.h"
#include "buffers.h"
#include "gemm.h"
#include "layers.h"
#include "lstm_cell.h"
#include "small_gemm.h"

namespace lstmkit {

using at::Tensor;

// Steps per chunk when streaming, and in backward: enough rows (K * B) for an efficient GEMM, few enough that
// the chunk's buffers stay small (at B = 64, H = 512: 16 steps, 8 MB of a_x).
int64_t chunk_steps(int64_t T, int64_t B) {
  B = std::max<int64_t>(B, 1);  // an empty batch: any chunk size will do, only not a division by zero
  return std::min<int64_t>(T, std::max<int64_t>(1, (1024 + B - 1) / B));
}

namespace {

// The parameters of the pointwise terms, in acc_t; the layer norm's absent without ln.
struct CellParams {
  const Tensor& bias;                                       // (GH) b_ih + b_hh (zeros without bias)
  const Tensor& peephole;                                   // (3, H) (zeros without peephole)
  const OptTensor &gamma_ih, &gamma_hh, &gamma_c, &beta_c;  // (GH), (GH), (H), (H)
};

// What forward saves for backward (undefined where the configuration has none).
struct Saved {
  Tensor hin, hraw, gates, cseq, cnew, tanhm, mean, rstd;
};

// The Layer view both passes share: sizes, options, parameters and saved buffers. Forward then points it at its
// state and outputs, backward at its grads.
template <typename scalar_t, typename acc_t>
Layer<scalar_t, acc_t> make_layer(const LstmOptions& o, int64_t T, int64_t B, int64_t H, int64_t R, const CellParams& p,
                                  const Saved& s) {
  Layer<scalar_t, acc_t> L{};
  L.T = T, L.B = B, L.H = H, L.R = R;
  L.coupled = o.coupled, L.proj = s.hraw.defined(), L.ln = given(p.gamma_ih), L.save = o.save;
  L.bias = p.bias.data_ptr<acc_t>();
  L.peep = p.peephole.data_ptr<acc_t>();
  L.gamma_ih = data_or_null<acc_t>(p.gamma_ih), L.gamma_hh = data_or_null<acc_t>(p.gamma_hh);
  L.gamma_c = data_or_null<acc_t>(p.gamma_c), L.beta_c = data_or_null<acc_t>(p.beta_c);
  L.mask = data_or_null<acc_t>(o.recurrent_mask);
  L.z_h = data_or_null<acc_t>(o.z_h), L.z_c = data_or_null<acc_t>(o.z_c);
  L.zp = static_cast<acc_t>(given(o.z_c) ? 0.0 : o.zoneout_p);
  L.lengths = data_or_null<int64_t>(o.lengths);
  L.eps = static_cast<acc_t>(o.eps);
  L.t0 = 0;
  L.hin = s.hin.data_ptr<scalar_t>(), L.hraw = data_or_null<scalar_t>(s.hraw);
  L.gates = s.gates.data_ptr<acc_t>(), L.cseq = s.cseq.data_ptr<acc_t>(), L.cnew = data_or_null<acc_t>(s.cnew);
  L.tanhm = s.tanhm.data_ptr<acc_t>();
  L.mean = data_or_null<acc_t>(s.mean), L.rstd = data_or_null<acc_t>(s.rstd);
  for (int k = 0; k < 6; ++k) {  // interventions: i, f, g, o, c, h (or none)
    const bool edited = k < static_cast<int>(o.edit_keep.size());
    L.ek[k] = edited ? data_or_null<acc_t>(o.edit_keep[k]) : nullptr;
    L.ev[k] = edited ? data_or_null<acc_t>(o.edit_value[k]) : nullptr;
  }
  return L;
}

}  // namespace

// Returns y, h_n, c_n, gates, c_seq, then what backward needs (Saved; undefined where the configuration has none).
// Without `save` (no backward to come) and without `records` (no trace), the call streams: a_x, the gates and
// c_seq exist for one chunk of steps at a time, so the memory a call holds besides y does not grow with T, and
// gates and c_seq come back empty (0, B, .).
std::vector<Tensor> lstm_forward(const Tensor& x, const Tensor& h0, const Tensor& c0, const Tensor& w_ih,
                                 const Tensor& w_hh, const Tensor& bias, const Tensor& peephole, const OptTensor& w_hr,
                                 const OptTensor& gamma_ih, const OptTensor& gamma_hh, const OptTensor& gamma_c,
                                 const OptTensor& beta_c, const LstmOptions& o) {
  const Gemm gemm = static_cast<Gemm>(o.gemm);
  const bool save = o.save, records = o.records;
  const int64_t T = x.size(0), B = x.size(1), I = x.size(2), GH = w_ih.size(0), H = GH / 4, R = w_hh.size(1);
  const bool proj = given(w_hr), ln = given(gamma_ih), zoneout = given(o.z_c) || o.zoneout_p > 0;
  auto so = x.options();
  auto ao = bias.options();
  Tensor y = empty_big({T, B, R}, so);
  Tensor h = h0.to(ao.dtype(), /*non_blocking=*/false, /*copy=*/true);
  Tensor c = c0.to(ao.dtype(), false, true);
  if (T == 0) {
    return {y, h.to(x.scalar_type()), c.to(x.scalar_type()), empty_big({T, B, GH}, ao), empty_big({T, B, H}, ao)};
  }
  const bool stream = !save && !records;
  const int64_t K = stream ? chunk_steps(T, B) : T;  // steps of a_x, gates and c_seq held at once
  // The working buffers come from the buffer cache (buffers.h), the records of a trace too: on fresh memory the
  // a_x GEMM of a T=100, B=64, H=512 trace took 142 ms instead of 55 (faulting in and zeroing 52 MB as it went).
  Tensor cseq = cached_empty({K, B, H}, ao);
  // a_x = x W_ih^T for the steps [t0, t0 + K) in `ax` (K * B, GH). MKL writes into a cached buffer; oneDNN
  // returns its own, copied in only when streaming.
  Tensor ax = stream || gemm != Gemm::OneDnn ? cached_empty({K * B, GH}, so) : Tensor();
  auto project_input = [&](int64_t t0) {
    const int64_t k = std::min(K, T - t0);
    Tensor xk = x.slice(0, t0, t0 + k).reshape({k * B, I});
    if (!ax.defined()) {
      ax = matmul_nt(gemm, xk, w_ih);
    } else {
      matmul_nt_into(gemm, xk, w_ih, ax.slice(0, 0, k * B));
    }
  };
  project_input(0);
  // When the pointwise math runs in x's dtype, the gates overwrite a_x in place: one buffer less.
  Tensor gates = x.scalar_type() == bias.scalar_type() ? ax.view({K, B, GH}) : cached_empty({K, B, GH}, ao);
  // What only backward reads is kept for every step if `save`, else for one (hin: two, this step's and the next's).
  const int64_t TS = save ? T : 1;
  Tensor hin = cached_empty({save ? T : 2, B, R}, so);
  hin.select(0, 0).copy_(given(o.recurrent_mask) ? h0 * *o.recurrent_mask : h0);
  Tensor hraw = proj ? cached_empty({TS, B, H}, so) : Tensor();
  Tensor cnew = zoneout ? cached_empty({TS, B, H}, ao) : Tensor();
  Tensor tanhm = cached_empty({TS, B, H}, ao);
  // Layer norm: the moments of a_x, a_h and c', from which backward rebuilds their normalised values.
  Tensor mean = ln ? at::empty({TS, B, 3}, ao) : Tensor();
  Tensor rstd = ln ? at::empty({TS, B, 3}, ao) : Tensor();
  Tensor ah_buf = at::empty({B, GH}, so);
  Tensor hp_buf = proj ? at::empty({B, R}, so) : Tensor();
  const StepWeight W_hh(gemm, w_hh, B);
  const std::optional<StepWeight> W_hr = proj ? std::optional<StepWeight>(StepWeight(gemm, *w_hr, B)) : std::nullopt;
  const CellParams params{bias, peephole, gamma_ih, gamma_hh, gamma_c, beta_c};
  const Saved saved{hin, hraw, gates, cseq, cnew, tanhm, mean, rstd};

  AT_DISPATCH_FLOATING_TYPES_AND(at::kBFloat16, x.scalar_type(), "lstmkit_forward", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    auto L = make_layer<scalar_t, acc_t>(o, T, B, H, R, params, saved);
    L.ax = ax.data_ptr<scalar_t>(), L.y = y.data_ptr<scalar_t>();
    L.h = h.data_ptr<acc_t>(), L.c = c.data_ptr<acc_t>();

    // Generic, so that `if constexpr` drops the body for bf16 (ResidentWeight is fp32 and fp64 only).
    auto run_resident = [&](auto* type) {
      using elem_t = std::remove_pointer_t<decltype(type)>;
      if constexpr (std::is_same_v<elem_t, acc_t>) {
        // Per chunk of steps, each thread runs every step for its own batch rows: a row's recurrence needs only
        // its own rows, so there is no hand-off between threads per step, and no library call.
        const ResidentWeight<elem_t> W_hh_r(w_hh.data_ptr<elem_t>(), GH, R);  // (GH, R)
        const ResidentWeight<elem_t> W_hr_r =
            proj ? ResidentWeight<elem_t>(w_hr->data_ptr<elem_t>(), R, H) : ResidentWeight<elem_t>();  // (P, H)
        elem_t* ah = ah_buf.data_ptr<elem_t>();                                                        // (B, GH)
        elem_t* hp = proj ? hp_buf.data_ptr<elem_t>() : nullptr;                                       // (B, P)
        for (int64_t t0 = 0; t0 < T; t0 += K) {
          if (t0 > 0) project_input(t0), L.t0 = t0;  // streaming: the next chunk's a_x, into the same buffers
          const int64_t t1 = std::min(T, t0 + K);
          at::parallel_for(0, B, resident_grain(), [&](int64_t b0, int64_t b1) {
            std::vector<acc_t> scratch(forward_scratch(H, ln));
            for (int64_t t = t0; t < t1; ++t) {
              W_hh_r.apply(L.hin + L.hrow(t, b0) * R, R, b1 - b0, ah + b0 * GH, GH);
              for (int64_t b = b0; b < b1; ++b) forward_row(L, t, b, ah + b * GH, scratch.data());
              if (proj) {
                W_hr_r.apply(L.hraw + L.srow(t, b0) * H, H, b1 - b0, hp + b0 * R, R);
                for (int64_t b = b0; b < b1; ++b) finish_h(L, t, b, hp + b * R);
              }
            }
          });
        }
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
      if (stream && t > 0 && t % K == 0) {  // the next chunk: its a_x, into the same buffers
        project_input(t);
        L.t0 = t;
      }
      Tensor ah = W_hh.apply(hin.select(0, save ? t : t % 2), ah_buf);  // (B, GH)
      const scalar_t* ah_p = ah.data_ptr<scalar_t>();
      at::parallel_for(0, B, grain(4 * H), [&](int64_t b0, int64_t b1) {
        std::vector<acc_t> scratch(forward_scratch(H, ln));
        for (int64_t b = b0; b < b1; ++b) forward_row(L, t, b, ah_p + b * GH, scratch.data());
      });
      if (proj) {
        Tensor hp = W_hr->apply(hraw.select(0, save ? t : 0), hp_buf);  // (B, P)
        const scalar_t* hp_p = hp.data_ptr<scalar_t>();
        at::parallel_for(0, B, grain(4 * H), [&](int64_t b0, int64_t b1) {
          for (int64_t b = b0; b < b1; ++b) finish_h(L, t, b, hp_p + b * R);
        });
      }
    }
  });
  if (stream) {
    gates = at::empty({0, B, GH}, ao);
    cseq = at::empty({0, B, H}, ao);
  }
  return {y, h.to(x.scalar_type()), c.to(x.scalar_type()), gates, cseq, hin, hraw, cnew, tanhm, mean, rstd};
}

// Returns dx, dh0, dc0, dw_ih, dw_hh, db (of b_ih and of b_hh alike), dw_hr, dpeephole (3, H), dgamma_ih,
// dgamma_hh, dgamma_c, dbeta_c; undefined where the layer has no such input, dx unless need_dx (a first layer's
// input often needs no grad, and dX is one of the three big GEMMs). Parameter grads of the pointwise terms (db,
// dpeephole, dgamma, dbeta) are in acc_t.
std::vector<Tensor> lstm_backward(const OptTensor& dy, const OptTensor& dh_n, const OptTensor& dc_n, const Tensor& x,
                                  const Tensor& c0, const Tensor& w_ih, const Tensor& w_hh, const Tensor& bias,
                                  const Tensor& peephole, const OptTensor& w_hr, const OptTensor& gamma_ih,
                                  const OptTensor& gamma_hh, const OptTensor& gamma_c, const OptTensor& beta_c,
                                  const Tensor& hin, const OptTensor& hraw, const Tensor& gates, const Tensor& cseq,
                                  const OptTensor& cnew, const Tensor& tanhm, const OptTensor& mean,
                                  const OptTensor& rstd, bool need_dx, const LstmOptions& o) {
  TORCH_CHECK(o.save, "lstmkit: backward of a forward that did not save (LstmOptions.save = False)");
  const Gemm gemm = static_cast<Gemm>(o.gemm);
  const bool has_bias = o.has_bias, has_peephole = o.has_peephole;
  const int64_t T = x.size(0), B = x.size(1), I = x.size(2), GH = w_ih.size(0), H = GH / 4, R = w_hh.size(1);
  const bool proj = given(w_hr), ln = given(gamma_ih);
  auto so = x.options();
  auto ao = bias.options();
  Tensor dh_keep = given(dh_n) ? dh_n->to(ao.dtype(), false, true) : at::zeros({B, R}, ao);  // (B, R)
  Tensor dc = given(dc_n) ? dc_n->to(ao.dtype(), false, true) : at::zeros({B, H}, ao);       // (B, H)

  // Steps per chunk. Chunks keep the backward-only buffers at a few MB: one (T, B, 4H) tensor at T=100, B=64,
  // H=512 is 52 MB, and layer norm would need five (its peak forward+backward fell from 472 to 191 MB). Without
  // layer norm nothing is recomputed and the chunks cost no speed: forward+backward (2 threads, median of 7,
  // interleaved) at T=100, B=64, H=512 and T=1000, B=32, H=128 took 251/123 ms plain and 256/128 ms with
  // peephole, against 250/125 and 261/145 with all steps at once. Layer norm pays for its two recomputed GEMMs:
  // 377 ms against 319 at T=100, B=64, H=512; 159 against 152 at T=150, B=64, H=256.
  const int64_t K = chunk_steps(T, B);
  // Chunk buffers, rows crow(t, b) (see Layer in lstm_cell.h).
  Tensor dA = cached_empty({K, B, GH}, so);
  Tensor dax = ln ? cached_empty({K, B, GH}, so) : dA;
  Tensor dah = ln ? cached_empty({K, B, GH}, so) : dA;
  Tensor dm = ln ? cached_empty({K, B, H}, ao) : Tensor();
  Tensor dhnew = proj ? cached_empty({K, B, R}, so) : Tensor();
  // Layer norm: the chunk's a_x and a_h recomputed (K * B, GH), and their normalised values, rebuilt in place when
  // the GEMMs run in acc_t (fp32, fp64).
  Tensor ax = ln ? cached_empty({K * B, GH}, so) : Tensor();
  Tensor ah = ln ? cached_empty({K * B, GH}, so) : Tensor();
  const bool in_place = so.dtype() == ao.dtype();
  Tensor xhat_ih = ln ? (in_place ? ax.view({K, B, GH}) : cached_empty({K, B, GH}, ao)) : Tensor();
  Tensor xhat_hh = ln ? (in_place ? ah.view({K, B, GH}) : cached_empty({K, B, GH}, ao)) : Tensor();
  Tensor chat = ln ? cached_empty({K, B, H}, ao) : Tensor();

  // The totals the chunks add to, in acc_t (the weight grads are cast to x's dtype at the end).
  Tensor dx = need_dx ? empty_big({T, B, I}, so) : Tensor();
  Tensor w_ih_t = need_dx ? w_ih.t().contiguous() : Tensor();  // (I, GH)
  WeightGrad dw_ih(GH, I, ao, x.scalar_type()), dw_hh(GH, R, ao, x.scalar_type());
  Tensor dw_hr = proj ? at::zeros({R, H}, ao) : Tensor();
  Tensor db = has_bias ? at::zeros({GH}, ao) : Tensor();
  Tensor dpeep = has_peephole ? at::zeros({3, H}, ao) : Tensor();
  Tensor dg_ih, dg_hh, dg_c, db_c;
  if (ln) {
    dg_ih = at::zeros({GH}, ao), dg_hh = at::zeros({GH}, ao), dg_c = at::zeros({H}, ao), db_c = at::zeros({H}, ao);
  }

  // Chunk [t0, t1)'s share of the GEMMs over all rows and of the reductions, once its steps are done.
  auto accumulate_chunk = [&](int64_t t0, int64_t t1) {
    const int64_t k = t1 - t0, n = k * B;  // steps, rows
    Tensor dax_k = dax.view({K * B, GH}).slice(0, 0, n), dah_k = dah.view({K * B, GH}).slice(0, 0, n);
    if (need_dx) matmul_nt_into(gemm, dax_k, w_ih_t, dx.slice(0, t0, t1).view({n, I}));
    dw_ih.add(gemm, dax_k, x.slice(0, t0, t1).view({n, I}));
    dw_hh.add(gemm, dah_k, hin.slice(0, t0, t1).view({n, R}));
    if (proj) {
      add_matmul(gemm, dw_hr, dhnew.view({K * B, R}).slice(0, 0, n).t(), hraw->slice(0, t0, t1).view({n, H}));
    }
    Tensor dA_k = dA.slice(0, 0, k).to(ao.dtype());  // (k, B, GH) in acc_t for the reductions
    if (has_bias) db.add_(dA_k.sum({0, 1}));
    if (has_peephole) {
      Tensor d4 = dA_k.view({k, B, 4, H});
      Tensor c_prev = t0 > 0 ? cseq.slice(0, t0 - 1, t1 - 1)
                             : at::cat({c0.unsqueeze(0), cseq.slice(0, 0, t1 - 1)}, 0);  // (k, B, H)
      Tensor c_new = (given(cnew) ? *cnew : cseq).slice(0, t0, t1);                      // (k, B, H)
      dpeep.add_(at::stack({(d4.select(2, 0) * c_prev).sum({0, 1}), (d4.select(2, 1) * c_prev).sum({0, 1}),
                            (d4.select(2, 3) * c_new).sum({0, 1})}));
    }
    if (ln) {
      Tensor dm_k = dm.slice(0, 0, k);
      dg_ih.add_((dA_k * xhat_ih.slice(0, 0, k)).sum({0, 1}));
      dg_hh.add_((dA_k * xhat_hh.slice(0, 0, k)).sum({0, 1}));
      dg_c.add_((dm_k * chat.slice(0, 0, k)).sum({0, 1}));
      db_c.add_(dm_k.sum({0, 1}));
    }
  };

  const Tensor w_hh_t = w_hh.t().contiguous(), w_hr_t = proj ? w_hr->t().contiguous() : Tensor();  // (R, GH), (H, P)
  const StepWeight W_hh_t(gemm, w_hh_t, B);
  const std::optional<StepWeight> W_hr_t = proj ? std::optional<StepWeight>(StepWeight(gemm, w_hr_t, B)) : std::nullopt;
  Tensor dhg_buf = at::empty({B, R}, so), dr_buf = at::empty({B, H}, so);
  Tensor dhg;  // (B, R) dA_h(t+1) W_hh; undefined before the first step
  const CellParams params{bias, peephole, gamma_ih, gamma_hh, gamma_c, beta_c};
  const Saved saved{
      hin, or_undefined(hraw), gates, cseq, or_undefined(cnew), tanhm, or_undefined(mean), or_undefined(rstd)};

  AT_DISPATCH_FLOATING_TYPES_AND(at::kBFloat16, x.scalar_type(), "lstmkit_backward", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    auto L = make_layer<scalar_t, acc_t>(o, T, B, H, R, params, saved);
    L.c0 = c0.data_ptr<acc_t>();
    L.dy = data_or_null<scalar_t>(dy);
    L.dh_keep = dh_keep.data_ptr<acc_t>(), L.dc = dc.data_ptr<acc_t>();
    L.dhnew = data_or_null<scalar_t>(dhnew);
    L.dA = dA.data_ptr<scalar_t>(), L.dax = dax.data_ptr<scalar_t>(), L.dah = dah.data_ptr<scalar_t>();
    L.dm = data_or_null<acc_t>(dm);
    L.xhat_ih = data_or_null<acc_t>(xhat_ih), L.xhat_hh = data_or_null<acc_t>(xhat_hh);
    L.chat = data_or_null<acc_t>(chat);

    // Layer norm: the normalised a_x, a_h and c' of steps [t0, t1), which forward did not keep.
    auto rebuild_chunk = [&](int64_t t0, int64_t t1) {
      const int64_t n = (t1 - t0) * B;                                                   // rows
      matmul_nt_into(gemm, x.slice(0, t0, t1).view({n, I}), w_ih, ax.slice(0, 0, n));    // a_x (n, GH)
      matmul_nt_into(gemm, hin.slice(0, t0, t1).view({n, R}), w_hh, ah.slice(0, 0, n));  // a_h (n, GH)
      const scalar_t* ax_p = ax.data_ptr<scalar_t>();
      const scalar_t* ah_p = ah.data_ptr<scalar_t>();
      at::parallel_for(0, n, grain(4 * H), [&](int64_t r0, int64_t r1) {
        for (int64_t r = r0; r < r1; ++r) rebuild_ln_row(L, t0 + r / B, r % B, ax_p + r * GH, ah_p + r * GH);
      });
    };

    // Step t's pointwise pass: dA(t) (and dA_x, dA_h, dm) from the grads of the state after it.
    auto backward_step = [&](int64_t t) {
      const scalar_t* dhg_p = dhg.defined() ? dhg.data_ptr<scalar_t>() : nullptr;
      if (proj) {
        at::parallel_for(0, B, grain(4 * H), [&](int64_t b0, int64_t b1) {
          for (int64_t b = b0; b < b1; ++b)
            backward_h_row(L, t, b, dhg_p ? dhg_p + b * R : nullptr, L.dhnew + L.crow(t, b) * R);
        });
        Tensor dr = W_hr_t->apply(dhnew.select(0, t - L.t0), dr_buf);  // (B, H)
        const scalar_t* dr_p = dr.data_ptr<scalar_t>();
        at::parallel_for(0, B, grain(4 * H), [&](int64_t b0, int64_t b1) {
          std::vector<acc_t> scratch(6 * H);
          for (int64_t b = b0; b < b1; ++b) backward_cell_row(L, t, b, dr_p + b * H, scratch.data());
        });
      } else {
        at::parallel_for(0, B, grain(4 * H), [&](int64_t b0, int64_t b1) {
          std::vector<acc_t> scratch(7 * H);  // 6H for the cell, then H for dr
          acc_t* dr = scratch.data() + 6 * H;
          for (int64_t b = b0; b < b1; ++b) {
            backward_h_row(L, t, b, dhg_p ? dhg_p + b * R : nullptr, dr);
            backward_cell_row(L, t, b, dr, scratch.data());
          }
        });
      }
    };

    // As in forward: each thread runs every step of its own rows; generic so that bf16 drops the body.
    auto run_resident = [&](auto* type) {
      using elem_t = std::remove_pointer_t<decltype(type)>;
      if constexpr (std::is_same_v<elem_t, acc_t>) {
        const ResidentWeight<elem_t> W_hh_r(w_hh_t.data_ptr<elem_t>(), R, GH);  // (R, GH)
        const ResidentWeight<elem_t> W_hr_r =
            proj ? ResidentWeight<elem_t>(w_hr_t.data_ptr<elem_t>(), H, R) : ResidentWeight<elem_t>();  // (H, P)
        elem_t* dhg_p = dhg_buf.data_ptr<elem_t>();  // (B, R) dA_h(t+1) W_hh
        elem_t* dr_p = dr_buf.data_ptr<elem_t>();    // (B, H) with proj
        for (int64_t t1 = T; t1 > 0; t1 -= K) {
          const int64_t t0 = std::max<int64_t>(0, t1 - K);
          L.t0 = t0;
          if (ln) rebuild_chunk(t0, t1);
          at::parallel_for(0, B, resident_grain(), [&](int64_t b0, int64_t b1) {
            std::vector<acc_t> scratch(7 * H);  // 6H for the cell, then H for dr
            for (int64_t t = t1 - 1; t >= t0; --t) {
              const bool last = t == T - 1;  // no dA_h(t+1) yet
              if (proj) {
                for (int64_t b = b0; b < b1; ++b)
                  backward_h_row(L, t, b, last ? nullptr : dhg_p + b * R, L.dhnew + L.crow(t, b) * R);
                W_hr_r.apply(L.dhnew + L.crow(t, b0) * R, R, b1 - b0, dr_p + b0 * H, H);
                for (int64_t b = b0; b < b1; ++b) backward_cell_row(L, t, b, dr_p + b * H, scratch.data());
              } else {
                acc_t* dr = scratch.data() + 6 * H;
                for (int64_t b = b0; b < b1; ++b) {
                  backward_h_row(L, t, b, last ? nullptr : dhg_p + b * R, dr);
                  backward_cell_row(L, t, b, dr, scratch.data());
                }
              }
              W_hh_r.apply(L.dah + L.crow(t, b0) * GH, GH, b1 - b0, dhg_p + b0 * R, R);
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
      if (ln) rebuild_chunk(t0, t1);
      for (int64_t t = t1 - 1; t >= t0; --t) {
        backward_step(t);
        dhg = W_hh_t.apply(dah.select(0, t - t0), dhg_buf);  // (B, R), for step t - 1
      }
      accumulate_chunk(t0, t1);
    }
  });

  // The grad of h0 is what reaches h_{-1}: the kept part plus the recurrent GEMM's, through the mask.
  Tensor dh_in = dhg.to(ao.dtype());
  if (given(o.recurrent_mask)) dh_in = dh_in * *o.recurrent_mask;
  Tensor dh0 = (dh_keep + dh_in).to(x.scalar_type());
  Tensor dc0 = dc.to(x.scalar_type());
  auto in_x_dtype = [&](const Tensor& g) { return g.defined() ? g.to(x.scalar_type()) : g; };
  return {dx,    dh0,  dc0, in_x_dtype(dw_ih.result()), in_x_dtype(dw_hh.result()), db, in_x_dtype(dw_hr), dpeep, dg_ih,
          dg_hh, dg_c, db_c};
}

}  // namespace lstmkit
