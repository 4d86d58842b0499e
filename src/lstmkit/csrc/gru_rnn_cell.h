// The GRU and Elman RNN cells, one batch row at a time: the pointwise half of a step (forward) and of its BPTT
// (backward), as torch.nn.GRU and torch.nn.RNN compute them (lstmkit/cells/gru.py, rnn.py):
//
//   RNN:  a = x W_ih^T + b_ih + h_in W_hh^T + b_hh;   h' = tanh(a) or relu(a)
//   GRU:  r = σ(a_x,r + a_h,r);  z = σ(a_x,z + a_h,z)       (a_x = x W_ih^T + b_ih, a_h = h_in W_hh^T + b_hh)
//         n = tanh(a_x,n + r ⊙ a_h,n);  h' = (1 - z) ⊙ n + z ⊙ h
//   h_in = h ⊙ recurrent_mask (or h); zoneout then keeps h with keep-mask z_h (training) or mixes with p (eval).
//
// The GEMMs (a_x for all steps, a_h per step) run outside in gru_rnn_layer.cpp; rows are independent, so a step's
// rows run in parallel with no shared writes. Shapes: T steps, B batch, H hidden, GH = G * H = 3H (GRU) or H (RNN).
// scalar_t stores what feeds a GEMM (x, h_in, y, dA), acc_t (float for bfloat16) the state and pointwise math.
#pragma once

#include <algorithm>
#include <cstdint>

#include "pointwise.h"

namespace lstmkit {

enum class CellKind : int64_t { RnnTanh = 0, RnnRelu = 1, Gru = 2 };

template <typename scalar_t, typename acc_t>
struct GruRnnLayer {
  int64_t T, B, H, GH;
  CellKind kind;
  const acc_t *b_ih, *b_hh;  // (GH) each; zeros when the layer has no bias; forward only
  const acc_t* mask;         // (B, H) recurrent dropout mask or null
  const acc_t* z_h;          // (T, B, H) zoneout keep-mask or null
  acc_t zp;                  // eval zoneout probability (0 = none)
  const int64_t* lengths;    // (B) or null
  bool save;                 // keep every step of what backward reads (else hin holds two steps, hn one, no hseq)
  bool records;              // keep every step's gates (a trace, or backward); else they hold one step
  // Forward buffers.
  const scalar_t* ax;  // (T, B, GH) x W_ih^T, without bias
  scalar_t* hin;       // (T, B, H) h_{t-1} * mask: the recurrent GEMM's input at step t; saved
  scalar_t* y;         // (T, B, H) state h after each step (0 past a row's length)
  acc_t* h;            // (B, H) state h
  acc_t* gates;        // (T or 1, B, GH) the records: RNN a; GRU r, z, n; saved (rows: grow)
  acc_t* hn;           // (T or 1, B, H) GRU a_h,n = h_in W_hn^T + b_hn (backward's grad of r); saved (srow)
  acc_t* hseq;         // (T, B, H) GRU state h after each step, in acc_t (backward's grad of z); save only
  // Backward buffers.
  const acc_t* h0;      // (B, H)
  const scalar_t* dy;   // (T, B, H) or null
  acc_t* dh_keep;       // (B, H) grad of state h that does not pass through W_hh (z ⊙ h, zoneout, padding)
  int64_t t0;           // backward runs in chunks of steps [t0, t0 + K): dax, dah hold one chunk
  scalar_t *dax, *dah;  // (K, B, GH) grad of a_x and of a_h (the same buffer for the RNN)
  // Interventions (lstmkit/interventions.py): v' = keep * v + value, (T, B, H) each, rows row(t, b); null where
  // a record has none. The gates RNN a (before the activation) or GRU r, z, n (after theirs), in that order.
  const acc_t *eg_k[3], *eg_v[3];
  const acc_t *eh_k, *eh_v;  // the state h, after zoneout's mix

  bool gates_edited() const { return eg_k[0] != nullptr || eg_k[1] != nullptr || eg_k[2] != nullptr; }
  // Row e = row(t, b) of gate k's edit (keep 1, value 0 without one).
  const acc_t* gate_keep(int k, int64_t e) const { return eg_k[k] ? eg_k[k] + e * H : constant_row<acc_t>(H, 1); }
  const acc_t* gate_value(int k, int64_t e) const { return eg_v[k] ? eg_v[k] + e * H : constant_row<acc_t>(H, 0); }

  bool valid(int64_t t, int64_t b) const { return lengths == nullptr || t < lengths[b]; }
  int64_t row(int64_t t, int64_t b) const { return t * B + b; }
  int64_t hrow(int64_t t, int64_t b) const { return (save ? t : (t & 1)) * B + b; }
  int64_t srow(int64_t t, int64_t b) const { return save ? row(t, b) : b; }     // hn, hseq
  int64_t grow(int64_t t, int64_t b) const { return records ? row(t, b) : b; }  // gates
  int64_t crow(int64_t t, int64_t b) const { return (t - t0) * B + b; }         // dax, dah
  bool zoneout_on() const { return z_h != nullptr || zp != acc_t(0); }
  acc_t zoneout(int64_t t, int64_t b, int64_t j) const { return z_h ? z_h[row(t, b) * H + j] : zp; }
};

// The gates of row e = row(t, b) with interventions, each edited right after it is computed so the edited values
// feed the rest of the step: RNN a before its activation; GRU r (before n), z and n (before h').
template <typename scalar_t, typename acc_t>
inline void gru_rnn_edited_gates(const GruRnnLayer<scalar_t, acc_t>& L, int64_t e, const scalar_t* __restrict ax,
                                 const scalar_t* __restrict ah, acc_t* __restrict gt, acc_t* __restrict hn,
                                 const acc_t* __restrict hs, acc_t* __restrict h_new) {
  const int64_t H = L.H;
  const acc_t* __restrict b_ih = L.b_ih;
  const acc_t* __restrict b_hh = L.b_hh;
  const acc_t* __restrict k_0 = L.gate_keep(0, e), * __restrict v_0 = L.gate_value(0, e);
  if (L.kind == CellKind::Gru) {
    const acc_t* __restrict k_z = L.gate_keep(1, e), * __restrict v_z = L.gate_value(1, e);
    const acc_t* __restrict k_n = L.gate_keep(2, e), * __restrict v_n = L.gate_value(2, e);
#pragma omp simd
    for (int64_t j = 0; j < H; ++j) {
      acc_t r_ = k_0[j] * sigmoid(acc_t(ax[j]) + b_ih[j] + acc_t(ah[j]) + b_hh[j]) + v_0[j];
      acc_t z = k_z[j] * sigmoid(acc_t(ax[H + j]) + b_ih[H + j] + acc_t(ah[H + j]) + b_hh[H + j]) + v_z[j];
      acc_t a_hn = acc_t(ah[2 * H + j]) + b_hh[2 * H + j];
      acc_t n = k_n[j] * tanh_(acc_t(ax[2 * H + j]) + b_ih[2 * H + j] + r_ * a_hn) + v_n[j];
      gt[j] = r_;
      gt[H + j] = z;
      gt[2 * H + j] = n;
      hn[j] = a_hn;
      h_new[j] = (acc_t(1) - z) * n + z * hs[j];
    }
  } else {
    const bool relu = L.kind == CellKind::RnnRelu;
#pragma omp simd
    for (int64_t j = 0; j < H; ++j) {
      acc_t a = k_0[j] * (acc_t(ax[j]) + b_ih[j] + acc_t(ah[j]) + b_hh[j]) + v_0[j];
      gt[j] = a;
      h_new[j] = relu ? (a > acc_t(0) ? a : acc_t(0)) : tanh_(a);
    }
  }
}

// Backward of step t, row b with interventions (gru_rnn_backward_row's, with each grad multiplied by its edit's
// keep and the gates' derivatives taken before their edits).
template <typename scalar_t, typename acc_t>
inline void gru_rnn_edited_backward_row(const GruRnnLayer<scalar_t, acc_t>& L, int64_t t, int64_t b,
                                        acc_t* __restrict keep, scalar_t* __restrict dax, scalar_t* dah) {
  const int64_t H = L.H, GH = L.GH, r = L.row(t, b);
  const scalar_t* dy = L.dy ? L.dy + r * H : nullptr;
  const acc_t* __restrict gt = L.gates + r * GH;
  const acc_t* __restrict k_0 = L.gate_keep(0, r), * __restrict v_0 = L.gate_value(0, r);
  const acc_t* __restrict hk = L.eh_k ? L.eh_k + r * H : constant_row<acc_t>(H, 1);
  if (L.kind == CellKind::Gru) {
    const acc_t* __restrict hn = L.hn + r * H;
    const acc_t* __restrict h_prev = t > 0 ? L.hseq + L.row(t - 1, b) * H : L.h0 + b * H;  // state h_{t-1}
    const acc_t* __restrict k_z = L.gate_keep(1, r), * __restrict v_z = L.gate_value(1, r);
    const acc_t* __restrict k_n = L.gate_keep(2, r), * __restrict v_n = L.gate_value(2, r);
    for (int64_t j = 0; j < H; ++j) {
      acc_t d = hk[j] * (keep[j] + (dy ? acc_t(dy[j]) : acc_t(0)));  // grad of state h_t before its edit
      acc_t zo = L.zoneout(t, b, j);
      acc_t d_new = (acc_t(1) - zo) * d;  // grad of the cell's h'
      acc_t r_ = gt[j], z = gt[H + j], n = gt[2 * H + j];
      acc_t r0 = unedited(r_, k_0[j], v_0[j]), z0 = unedited(z, k_z[j], v_z[j]), n0 = unedited(n, k_n[j], v_n[j]);
      acc_t da_n = d_new * (acc_t(1) - z) * k_n[j] * (acc_t(1) - n0 * n0);
      acc_t da_z = d_new * (acc_t(h_prev[j]) - n) * k_z[j] * z0 * (acc_t(1) - z0);
      acc_t da_r = da_n * hn[j] * k_0[j] * r0 * (acc_t(1) - r0);
      keep[j] = zo * d + d_new * z;
      dax[j] = scalar_t(da_r);
      dax[H + j] = scalar_t(da_z);
      dax[2 * H + j] = scalar_t(da_n);
      dah[j] = scalar_t(da_r);
      dah[H + j] = scalar_t(da_z);
      dah[2 * H + j] = scalar_t(da_n * r_);
    }
  } else {
    const bool relu = L.kind == CellKind::RnnRelu;
    for (int64_t j = 0; j < H; ++j) {
      acc_t d = hk[j] * (keep[j] + (dy ? acc_t(dy[j]) : acc_t(0)));
      acc_t zo = L.zoneout(t, b, j);
      acc_t a = gt[j], h = tanh_(a);                              // a: the activation's input (edited)
      acc_t act = relu ? acc_t(a > acc_t(0)) : acc_t(1) - h * h;  // the activation's derivative at a
      keep[j] = zo * d;
      dax[j] = scalar_t((acc_t(1) - zo) * d * act * k_0[j]);
    }
  }
}

// Forward pointwise pass of step t, row b: gates, the new state h, y_t and the next step's GEMM input.
// ah: (GH) row of h_in W_hh^T (without bias). scratch: H values.
template <typename scalar_t, typename acc_t>
inline void gru_rnn_forward_row(const GruRnnLayer<scalar_t, acc_t>& L, int64_t t, int64_t b,
                                const scalar_t* __restrict ah, acc_t* __restrict scratch) {
  const int64_t H = L.H, GH = L.GH, r = L.row(t, b), s = L.srow(t, b);
  acc_t* __restrict gt = L.gates + L.grow(t, b) * GH;
  acc_t* __restrict hs = L.h + b * H;  // state h_{t-1}, becomes h_t
  scalar_t* __restrict y = L.y + r * H;
  acc_t* __restrict h_new = scratch;
  if (!L.valid(t, b)) {  // past the end: state unchanged, every record 0
    std::fill(gt, gt + GH, acc_t(0));
    if (L.hn) std::fill(L.hn + s * H, L.hn + (s + 1) * H, acc_t(0));
    std::fill(y, y + H, scalar_t(0));
  } else {
    const scalar_t* __restrict ax = L.ax + r * GH;
    const acc_t* __restrict b_ih = L.b_ih;
    const acc_t* __restrict b_hh = L.b_hh;
    if (L.gates_edited()) {  // intervened gates: their own pass (below), the plain one untouched
      gru_rnn_edited_gates(L, r, ax, ah, gt, L.hn ? L.hn + s * H : nullptr, hs, h_new);
    } else if (L.kind == CellKind::Gru) {
      acc_t* __restrict hn = L.hn + s * H;
#pragma omp simd
      for (int64_t j = 0; j < H; ++j) {
        acc_t r_ = sigmoid(acc_t(ax[j]) + b_ih[j] + acc_t(ah[j]) + b_hh[j]);
        acc_t z = sigmoid(acc_t(ax[H + j]) + b_ih[H + j] + acc_t(ah[H + j]) + b_hh[H + j]);
        acc_t a_hn = acc_t(ah[2 * H + j]) + b_hh[2 * H + j];
        acc_t n = tanh_(acc_t(ax[2 * H + j]) + b_ih[2 * H + j] + r_ * a_hn);
        gt[j] = r_;
        gt[H + j] = z;
        gt[2 * H + j] = n;
        hn[j] = a_hn;
        h_new[j] = (acc_t(1) - z) * n + z * hs[j];
      }
    } else {
      const bool relu = L.kind == CellKind::RnnRelu;
#pragma omp simd
      for (int64_t j = 0; j < H; ++j) {
        acc_t a = acc_t(ax[j]) + b_ih[j] + acc_t(ah[j]) + b_hh[j];
        gt[j] = a;
        h_new[j] = relu ? (a > acc_t(0) ? a : acc_t(0)) : tanh_(a);
      }
    }
    if (L.zoneout_on()) {
      for (int64_t j = 0; j < H; ++j) {
        acc_t z = L.zoneout(t, b, j);
        hs[j] = z * hs[j] + (acc_t(1) - z) * h_new[j];
      }
    } else {
      std::copy(h_new, h_new + H, hs);
    }
    if (L.eh_k) {  // the edit of h, after zoneout's mix: the carried state
      const acc_t* __restrict k = L.eh_k + r * H;
      const acc_t* __restrict v = L.eh_v + r * H;
      for (int64_t j = 0; j < H; ++j) hs[j] = k[j] * hs[j] + v[j];
    }
    for (int64_t j = 0; j < H; ++j) y[j] = scalar_t(hs[j]);
  }
  if (L.hseq) std::copy(hs, hs + H, L.hseq + s * H);
  if (t + 1 < L.T) {
    scalar_t* __restrict hin = L.hin + L.hrow(t + 1, b) * H;
    for (int64_t j = 0; j < H; ++j) hin[j] = scalar_t(L.mask ? hs[j] * L.mask[b * H + j] : hs[j]);
  }
}

// Backward pass of step t, row b: dhg (H, the row of dA_h(t+1) W_hh, or null at the last step) and dy_t make the
// grad of state h_t; writes the grads of a_x and a_h (dax, dah rows) and leaves in dh_keep the part of the grad of
// h_{t-1} that does not go through W_hh.
template <typename scalar_t, typename acc_t>
inline void gru_rnn_backward_row(const GruRnnLayer<scalar_t, acc_t>& L, int64_t t, int64_t b,
                                 const scalar_t* __restrict dhg) {
  const int64_t H = L.H, GH = L.GH, r = L.row(t, b);
  acc_t* __restrict keep = L.dh_keep + b * H;
  if (dhg) {
    for (int64_t j = 0; j < H; ++j) keep[j] += (L.mask ? L.mask[b * H + j] : acc_t(1)) * acc_t(dhg[j]);
  }
  scalar_t* __restrict dax = L.dax + L.crow(t, b) * GH;
  scalar_t* dah = L.dah + L.crow(t, b) * GH;  // the same memory as dax for the RNN
  if (!L.valid(t, b)) {                       // the state passed through unchanged: its grad stays in keep
    std::fill(dax, dax + GH, scalar_t(0));
    if (dah != dax) std::fill(dah, dah + GH, scalar_t(0));
    return;
  }
  if (L.gates_edited() || L.eh_k) return gru_rnn_edited_backward_row(L, t, b, keep, dax, dah);
  const scalar_t* dy = L.dy ? L.dy + r * H : nullptr;
  const acc_t* __restrict gt = L.gates + r * GH;
  if (L.kind == CellKind::Gru) {
    const acc_t* __restrict hn = L.hn + r * H;
    const acc_t* __restrict h_prev = t > 0 ? L.hseq + L.row(t - 1, b) * H : L.h0 + b * H;  // state h_{t-1}
    for (int64_t j = 0; j < H; ++j) {
      acc_t d = keep[j] + (dy ? acc_t(dy[j]) : acc_t(0));  // grad of state h_t
      acc_t zo = L.zoneout(t, b, j);
      acc_t d_new = (acc_t(1) - zo) * d;  // grad of the cell's h'
      acc_t r_ = gt[j], z = gt[H + j], n = gt[2 * H + j];
      acc_t da_n = d_new * (acc_t(1) - z) * (acc_t(1) - n * n);
      acc_t da_z = d_new * (acc_t(h_prev[j]) - n) * z * (acc_t(1) - z);
      acc_t da_r = da_n * hn[j] * r_ * (acc_t(1) - r_);
      keep[j] = zo * d + d_new * z;
      dax[j] = scalar_t(da_r);
      dax[H + j] = scalar_t(da_z);
      dax[2 * H + j] = scalar_t(da_n);
      dah[j] = scalar_t(da_r);
      dah[H + j] = scalar_t(da_z);
      dah[2 * H + j] = scalar_t(da_n * r_);
    }
  } else {
    const bool relu = L.kind == CellKind::RnnRelu;
    for (int64_t j = 0; j < H; ++j) {
      acc_t d = keep[j] + (dy ? acc_t(dy[j]) : acc_t(0));
      acc_t zo = L.zoneout(t, b, j);
      acc_t a = gt[j], h = tanh_(a);
      acc_t act = relu ? acc_t(a > acc_t(0)) : acc_t(1) - h * h;  // the activation's derivative at a
      keep[j] = zo * d;
      dax[j] = scalar_t((acc_t(1) - zo) * d * act);
    }
  }
}

}  // namespace lstmkit
