// One LSTM layer in one direction, time-major, forward and hand-written BPTT (see lstmkit/engines/fused.py for
// the equations and the Python-facing contract; lstm_cell.h for the pointwise half of each step).
//
// Forward:  a_x = X W_ih^T for all T*B rows at once (one GEMM); per step one GEMM a_h = h_in W_hh^T and one
//           pointwise pass over the batch rows in parallel (plus the projection GEMM and a short pass with proj).
// Backward: per step the pointwise pass and one GEMM dh = dA_h W_hh (two with proj); then dW_ih, dW_hh, dX and
//           dW_hr are single GEMMs over all T*B rows and db, dpeephole, dgamma fixed-order reductions.
// No atomics and no cross-thread accumulation: the same inputs give bitwise the same outputs on every run.
//
// The arguments arrive prepared by fused.py: contiguous, x's dtype for GEMM operands (x, h0, weights), the
// accumulation dtype acc_t (float for bfloat16, else x's dtype) for everything else; bias and peephole are always
// given (zeros when the layer has none).

#include <ATen/ATen.h>

#include <ATen/OpMathType.h>
#include <ATen/Parallel.h>

#include <optional>
#include <vector>

#include "aten_util.h"
#include "buffers.h"
#include "gemm.h"
#include "layers.h"
#include "lstm_cell.h"

namespace lstmkit {

using at::Tensor;

// Steps per chunk when streaming: enough rows (K * B) for an efficient a_x GEMM, few enough that the chunk's
// buffers stay small (at B = 64, H = 512: 16 steps, 8 MB of a_x).
int64_t chunk_steps(int64_t T, int64_t B) { return std::min<int64_t>(T, std::max<int64_t>(1, (1024 + B - 1) / B)); }

// Returns y, h_n, c_n, gates, c_seq, then what backward needs: hin, hraw, cnew, tanhm, xhat_ih, xhat_hh, chat,
// rstd (undefined where the configuration has none).
// Without `save` (no backward to come) and without `records` (no trace), the call streams: a_x, the gates and
// c_seq exist for one chunk of steps at a time, so the memory a call holds besides y does not grow with T, and
// gates and c_seq come back empty (0, B, .).
std::vector<Tensor> lstm_forward(const Tensor& x, const Tensor& h0, const Tensor& c0, const Tensor& w_ih,
                                 const Tensor& w_hh, const Tensor& bias, const Tensor& peephole,
                                 const OptTensor& w_hr, const OptTensor& lengths, const OptTensor& gamma_ih,
                                 const OptTensor& gamma_hh, const OptTensor& gamma_c, const OptTensor& beta_c,
                                 bool coupled, const OptTensor& recurrent_mask, const OptTensor& z_c,
                                 const OptTensor& z_h, double zoneout_p, double eps, int64_t gemm_id, bool save,
                                 bool records) {
  const Gemm gemm = static_cast<Gemm>(gemm_id);
  const int64_t T = x.size(0), B = x.size(1), I = x.size(2), G = w_ih.size(0), H = G / 4, R = w_hh.size(1);
  const bool proj = given(w_hr), ln = given(gamma_ih), zoneout = given(z_c) || zoneout_p > 0;
  auto so = x.options();
  auto ao = bias.options();
  Tensor y = empty_big({T, B, R}, so);
  Tensor h = h0.to(ao.dtype(), /*non_blocking=*/false, /*copy=*/true);
  Tensor c = c0.to(ao.dtype(), false, true);
  if (T == 0) {
    return {y, h.to(x.scalar_type()), c.to(x.scalar_type()), empty_big({T, B, G}, ao), empty_big({T, B, H}, ao)};
  }
  const bool stream = !save && !records;
  const int64_t K = stream ? chunk_steps(T, B) : T;  // steps of a_x, gates and c_seq held at once
  // The working buffers come from the buffer cache (buffers.h), the records of a trace too: on fresh memory the
  // a_x GEMM of a T=100, B=64, H=512 trace took 142 ms instead of 55 (faulting in and zeroing 52 MB as it went).
  Tensor cseq = cached_empty({K, B, H}, ao);
  // a_x = x W_ih^T for the steps [t0, t0 + K) in `ax` (K * B, G). MKL writes into a cached buffer; oneDNN
  // returns its own, copied in only when streaming.
  Tensor ax = stream || gemm == Gemm::Mkl ? cached_empty({K * B, G}, so) : Tensor();
  auto project_input = [&](int64_t t0) {
    const int64_t k = std::min(K, T - t0);
    Tensor xk = x.slice(0, t0, t0 + k).reshape({k * B, I});
    if (!ax.defined()) {
      ax = matmul_nt(gemm, xk, w_ih);
    } else if (gemm == Gemm::Mkl && x.scalar_type() != at::kBFloat16) {
      Tensor out = ax.slice(0, 0, k * B);
      at::mm_out(out, xk, w_ih.t());
    } else {
      ax.slice(0, 0, k * B).copy_(matmul_nt(gemm, xk, w_ih));
    }
  };
  project_input(0);
  // When the pointwise math runs in x's dtype, the gates overwrite a_x in place: one buffer less.
  Tensor gates = x.scalar_type() == bias.scalar_type() ? ax.view({K, B, G}) : cached_empty({K, B, G}, ao);
  // What only backward reads is kept for every step if `save`, else for one (hin: two, this step's and the next's).
  const int64_t TS = save ? T : 1;
  Tensor hin = cached_empty({save ? T : 2, B, R}, so);
  hin.select(0, 0).copy_(given(recurrent_mask) ? h0 * *recurrent_mask : h0);
  Tensor hraw = proj ? cached_empty({TS, B, H}, so) : Tensor();
  Tensor cnew = zoneout ? cached_empty({TS, B, H}, ao) : Tensor();
  Tensor tanhm = cached_empty({TS, B, H}, ao);
  Tensor xhat_ih, xhat_hh, chat, rstd;
  if (ln) {
    xhat_ih = cached_empty({TS, B, G}, ao);
    xhat_hh = cached_empty({TS, B, G}, ao);
    chat = cached_empty({TS, B, H}, ao);
    rstd = at::empty({TS, B, 3}, ao);
  }
  Tensor ah_buf = at::empty({B, G}, so);
  Tensor hp_buf = proj ? at::empty({B, R}, so) : Tensor();
  const StepWeight W_hh(gemm, w_hh, B);
  const std::optional<StepWeight> W_hr =
      proj ? std::optional<StepWeight>(StepWeight(gemm, *w_hr, B)) : std::nullopt;

  AT_DISPATCH_FLOATING_TYPES_AND(at::kBFloat16, x.scalar_type(), "lstmkit_forward", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    Layer<scalar_t, acc_t> L{};
    L.T = T, L.B = B, L.H = H, L.R = R;
    L.coupled = coupled, L.proj = proj, L.ln = ln, L.save = save;
    L.bias = bias.data_ptr<acc_t>();
    L.peep = peephole.data_ptr<acc_t>();
    L.gamma_ih = data_or_null<acc_t>(gamma_ih), L.gamma_hh = data_or_null<acc_t>(gamma_hh);
    L.gamma_c = data_or_null<acc_t>(gamma_c), L.beta_c = data_or_null<acc_t>(beta_c);
    L.mask = data_or_null<acc_t>(recurrent_mask);
    L.zc = data_or_null<acc_t>(z_c), L.zh = data_or_null<acc_t>(z_h);
    L.zp = static_cast<acc_t>(given(z_c) ? 0.0 : zoneout_p);
    L.lengths = data_or_null<int64_t>(lengths);
    L.eps = static_cast<acc_t>(eps);
    L.t0 = 0;
    L.ax = ax.data_ptr<scalar_t>();
    L.hin = hin.data_ptr<scalar_t>(), L.y = y.data_ptr<scalar_t>(), L.hraw = data_or_null<scalar_t>(hraw);
    L.h = h.data_ptr<acc_t>(), L.c = c.data_ptr<acc_t>();
    L.gates = gates.data_ptr<acc_t>(), L.cseq = cseq.data_ptr<acc_t>(), L.cnew = data_or_null<acc_t>(cnew);
    L.tanhm = tanhm.data_ptr<acc_t>();
    L.xhat_ih = data_or_null<acc_t>(xhat_ih), L.xhat_hh = data_or_null<acc_t>(xhat_hh);
    L.chat = data_or_null<acc_t>(chat), L.rstd = data_or_null<acc_t>(rstd);

    for (int64_t t = 0; t < T; ++t) {
      if (stream && t > 0 && t % K == 0) {  // the next chunk: its a_x, into the same buffers
        project_input(t);
        L.t0 = t;
      }
      Tensor ah = W_hh.apply(hin.select(0, save ? t : t % 2), ah_buf);  // (B, G)
      const scalar_t* ah_p = ah.data_ptr<scalar_t>();
      at::parallel_for(0, B, grain(4 * H), [&](int64_t b0, int64_t b1) {
        std::vector<acc_t> scratch(H);
        for (int64_t b = b0; b < b1; ++b) forward_row(L, t, b, ah_p + b * G, scratch.data());
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
    gates = at::empty({0, B, G}, ao);
    cseq = at::empty({0, B, H}, ao);
  }
  return {y, h.to(x.scalar_type()), c.to(x.scalar_type()), gates, cseq,
          hin, hraw, cnew, tanhm, xhat_ih, xhat_hh, chat, rstd};
}

// Returns dx, dh0, dc0, dw_ih, dw_hh, db (of b_ih and of b_hh alike), dw_hr, dpeephole (3, H), dgamma_ih,
// dgamma_hh, dgamma_c, dbeta_c; undefined where the layer has no such input, dx unless need_dx (a first layer's
// input often needs no grad, and dX is one of the three big GEMMs). Parameter grads of the pointwise terms (db,
// dpeephole, dgamma, dbeta) are in acc_t.
std::vector<Tensor> lstm_backward(const OptTensor& dy, const OptTensor& dh_n, const OptTensor& dc_n,
                                  const Tensor& x, const Tensor& c0, const Tensor& w_ih, const Tensor& w_hh,
                                  const Tensor& bias, const Tensor& peephole, const OptTensor& w_hr,
                                  const OptTensor& lengths, const OptTensor& gamma_ih, const OptTensor& gamma_hh,
                                  const OptTensor& gamma_c, const OptTensor& beta_c, bool coupled,
                                  const OptTensor& recurrent_mask, const OptTensor& z_c, const OptTensor& z_h,
                                  double zoneout_p, int64_t gemm_id, const Tensor& hin, const OptTensor& hraw,
                                  const Tensor& gates, const Tensor& cseq, const OptTensor& cnew,
                                  const Tensor& tanhm, const OptTensor& xhat_ih, const OptTensor& xhat_hh,
                                  const OptTensor& chat, const OptTensor& rstd, bool has_bias, bool has_peephole,
                                  bool need_dx) {
  const Gemm gemm = static_cast<Gemm>(gemm_id);
  const int64_t T = x.size(0), B = x.size(1), I = x.size(2), G = w_ih.size(0), H = G / 4, R = w_hh.size(1);
  const bool proj = given(w_hr), ln = given(gamma_ih);
  auto so = x.options();
  auto ao = bias.options();
  Tensor dh_keep = given(dh_n) ? dh_n->to(ao.dtype(), false, true) : at::zeros({B, R}, ao);  // (B, R)
  Tensor dc = given(dc_n) ? dc_n->to(ao.dtype(), false, true) : at::zeros({B, H}, ao);        // (B, H)
  Tensor dA = cached_empty({T, B, G}, so);
  Tensor dax = ln ? cached_empty({T, B, G}, so) : dA;
  Tensor dah = ln ? cached_empty({T, B, G}, so) : dA;
  Tensor dm = ln ? cached_empty({T, B, H}, ao) : Tensor();
  Tensor dhnew = proj ? cached_empty({T, B, R}, so) : Tensor();
  const StepWeight W_hh_t(gemm, w_hh.t().contiguous(), B);  // (R, G)
  const std::optional<StepWeight> W_hr_t =
      proj ? std::optional<StepWeight>(StepWeight(gemm, w_hr->t().contiguous(), B)) : std::nullopt;  // (H, P)
  Tensor dhg_buf = at::empty({B, R}, so), dr_buf = at::empty({B, H}, so);
  Tensor dhg;  // (B, R) dA_h(t+1) W_hh; undefined before the first step

  AT_DISPATCH_FLOATING_TYPES_AND(at::kBFloat16, x.scalar_type(), "lstmkit_backward", [&] {
    using acc_t = at::opmath_type<scalar_t>;
    Layer<scalar_t, acc_t> L{};
    L.T = T, L.B = B, L.H = H, L.R = R;
    L.coupled = coupled, L.proj = proj, L.ln = ln, L.save = true;
    L.bias = bias.data_ptr<acc_t>();
    L.peep = peephole.data_ptr<acc_t>();
    L.gamma_ih = data_or_null<acc_t>(gamma_ih), L.gamma_hh = data_or_null<acc_t>(gamma_hh);
    L.gamma_c = data_or_null<acc_t>(gamma_c), L.beta_c = data_or_null<acc_t>(beta_c);
    L.mask = data_or_null<acc_t>(recurrent_mask);
    L.zc = data_or_null<acc_t>(z_c), L.zh = data_or_null<acc_t>(z_h);
    L.zp = static_cast<acc_t>(given(z_c) ? 0.0 : zoneout_p);
    L.lengths = data_or_null<int64_t>(lengths);
    L.c0 = c0.data_ptr<acc_t>();
    L.gates = gates.data_ptr<acc_t>(), L.cseq = cseq.data_ptr<acc_t>(), L.cnew = data_or_null<acc_t>(cnew);
    L.tanhm = tanhm.data_ptr<acc_t>();
    L.xhat_ih = data_or_null<acc_t>(xhat_ih), L.xhat_hh = data_or_null<acc_t>(xhat_hh);
    L.chat = data_or_null<acc_t>(chat), L.rstd = data_or_null<acc_t>(rstd);
    L.dy = data_or_null<scalar_t>(dy);
    L.dh_keep = dh_keep.data_ptr<acc_t>(), L.dc = dc.data_ptr<acc_t>();
    L.dhnew = data_or_null<scalar_t>(dhnew);
    L.dA = dA.data_ptr<scalar_t>(), L.dax = dax.data_ptr<scalar_t>(), L.dah = dah.data_ptr<scalar_t>();
    L.dm = data_or_null<acc_t>(dm);

    for (int64_t t = T - 1; t >= 0; --t) {
      const scalar_t* dhg_p = dhg.defined() ? dhg.data_ptr<scalar_t>() : nullptr;
      if (proj) {
        at::parallel_for(0, B, grain(4 * H), [&](int64_t b0, int64_t b1) {
          for (int64_t b = b0; b < b1; ++b)
            backward_h_row(L, t, b, dhg_p ? dhg_p + b * R : nullptr, L.dhnew + L.row(t, b) * R);
        });
        Tensor dr = W_hr_t->apply(dhnew.select(0, t), dr_buf);  // (B, H)
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
      dhg = W_hh_t.apply(dah.select(0, t), dhg_buf);  // (B, R)
    }
  });

  // The grad of h0 is what reaches h_{-1}: the kept part plus the recurrent GEMM's, through the mask.
  Tensor dh_in = dhg.to(ao.dtype());
  if (given(recurrent_mask)) dh_in = dh_in * *recurrent_mask;
  Tensor dh0 = (dh_keep + dh_in).to(x.scalar_type());
  Tensor dc0 = dc.to(x.scalar_type());

  const int64_t TB = T * B;
  Tensor dax2 = dax.view({TB, G}), dah2 = dah.view({TB, G});
  Tensor dx = need_dx ? matmul_nt(gemm, dax2, w_ih.t().contiguous()).view({T, B, I}) : Tensor();
  Tensor dw_ih = matmul(gemm, dax2.t(), x.reshape({TB, I}));  // (G, I)
  Tensor dw_hh = matmul(gemm, dah2.t(), hin.view({TB, R}));   // (G, R)
  Tensor dw_hr = proj ? matmul(gemm, dhnew.view({TB, R}).t(), hraw->view({TB, H})) : Tensor();  // (P, H)

  Tensor dAa = dA.to(ao.dtype());  // (T, B, G) in acc_t for the reductions
  Tensor db = has_bias ? dAa.sum({0, 1}) : Tensor();
  Tensor dpeep;
  if (has_peephole) {
    Tensor d4 = dAa.view({T, B, 4, H});
    Tensor c_prev = at::cat({c0.unsqueeze(0), cseq.slice(0, 0, T - 1)}, 0);  // (T, B, H)
    Tensor c_new = given(cnew) ? *cnew : cseq;
    dpeep = at::stack({(d4.select(2, 0) * c_prev).sum({0, 1}), (d4.select(2, 1) * c_prev).sum({0, 1}),
                       (d4.select(2, 3) * c_new).sum({0, 1})});
  }
  Tensor dg_ih, dg_hh, dg_c, db_c;
  if (ln) {
    dg_ih = (dAa * *xhat_ih).sum({0, 1});
    dg_hh = (dAa * *xhat_hh).sum({0, 1});
    dg_c = (dm * *chat).sum({0, 1});
    db_c = dm.sum({0, 1});
  }
  return {dx, dh0, dc0, dw_ih, dw_hh, db, dw_hr, dpeep, dg_ih, dg_hh, dg_c, db_c};
}

}  // namespace lstmkit
