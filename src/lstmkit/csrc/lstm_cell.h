// The LSTM cell, one batch row at a time: the pointwise half of a step (forward) and of its BPTT (backward).
//
// The GEMMs (a_x = x W_ih^T for all steps, a_h = h_in W_hh^T per step, the projection) run outside in
// lstm_layer.cpp; these functions do everything between them for one row b of step t, reading and writing the
// buffers named in `Layer`. Rows are independent, so a step's rows run in parallel with no shared writes:
// results do not depend on the thread count or scheduling.
//
// Layer norm keeps only the mean and rstd of a_x, a_h and c' per row for backward, not the normalised values
// (two (T, B, 4H) tensors and a (T, B, H) one): backward rebuilds them a chunk of steps at a time from a_x and a_h
// recomputed by GEMMs and from the saved c' (rebuild_ln_row).
//
// Shapes: T steps, B batch, H hidden, R = P (projection) or H, GH = 4H (G = 4 gates of H each). Gate order
// i, f, g, o (torch's).
// scalar_t is the storage type of everything that feeds a GEMM (x, h_in, y, dA); acc_t (float for bfloat16)
// is the type of the cell state, the saved gates and all pointwise math.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "layer_norm.h"
#include "pointwise.h"

namespace lstmkit {

enum EditedRecord { kEditI = 0, kEditF, kEditG, kEditO, kEditC, kEditH };

template <typename scalar_t, typename acc_t>
struct Layer {
  int64_t T, B, H, R;
  bool coupled, proj, ln;
  bool save;  // keep every step's intermediate values for backward (else buffers marked "saved" hold one step)
  // Parameters, acc_t, contiguous. Absent bias/peephole point at zeros so the inner loops have no branches.
  const acc_t* bias;                                    // (GH) b_ih + b_hh
  const acc_t* peep;                                    // (3, H) p_i, p_f, p_o
  const acc_t *gamma_ih, *gamma_hh, *gamma_c, *beta_c;  // (GH), (GH), (H), (H); ln only
  const acc_t* mask;                                    // (B, R) recurrent dropout mask or null
  const acc_t *z_h, *z_c;                               // (T, B, R), (T, B, H) zoneout keep-masks or null
  acc_t zp;                                             // eval zoneout probability (0 = none)
  const int64_t* lengths;                               // (B) or null
  acc_t eps;
  // Buffers marked "chunk" hold only the steps [t0, t0 + K) (row crow(t, b)): in forward ax, gates and cseq
  // when streaming (inference without records; else t0 = 0 and they hold every step), in backward always.
  int64_t t0;
  // Forward buffers.
  const scalar_t* ax;  // (T, B, GH) x W_ih^T; the same memory as gates when scalar_t == acc_t; chunk
  scalar_t* hin;       // (T, B, R) h_{t-1} * mask: the recurrent GEMM's input at step t; saved
  scalar_t* y;         // (T, B, R)
  scalar_t* hraw;      // (T, B, H) o * tanh(m), the projection's input; proj only; saved
  acc_t* h;            // (B, R) state h
  acc_t* c;            // (B, H) state c
  const acc_t* c0;     // (B, H)
  acc_t* gates;        // (T, B, GH) activated i, f, g, o; chunk in forward when streaming
  acc_t* cseq;         // (T, B, H) state c after each step; chunk in forward when streaming
  acc_t* cnew;         // (T, B, H) c' before zoneout; zoneout only, else null; saved
  acc_t* tanhm;        // (T, B, H) tanh(m); saved
  acc_t *mean, *rstd;  // (T, B, 3) mean and 1/sqrt(var + eps) of a_x, a_h, c'; ln only; saved
  // Backward buffers.
  const scalar_t* dy;        // (T, B, R) or null
  acc_t* dh_keep;            // (B, R) grad of state h that does not pass through W_hh (zoneout, padding)
  acc_t* dc;                 // (B, H) grad of state c
  scalar_t* dhnew;           // (K, B, P) grad of the projection's output; proj only; chunk
  scalar_t *dA, *dax, *dah;  // (K, B, GH) grad of a, of a_x and of a_h (all three the same buffer without ln); chunk
  acc_t* dm;                 // (K, B, H) grad of m; ln only; chunk
  acc_t *xhat_ih, *xhat_hh;  // (K, B, GH) normalised a_x, a_h, rebuilt by rebuild_ln_row; ln only; chunk
  acc_t* chat;               // (K, B, H) normalised c', rebuilt likewise; ln only; chunk
  // Interventions (lstmkit/interventions.py): v' = keep * v + value per record, in the order of kEditI..kEditH,
  // rows row(t, b); null where a record has none. (T, B, H) each, h's (T, B, R). The gates are edited after their
  // activation, c where the cell computes c' (or after zoneout's mix when there is zoneout: cnew), h after the
  // projection and zoneout's mix (finish_h). Backward multiplies each grad by keep and takes an activation's
  // derivative at the value before the edit.
  const acc_t* ek[6];
  const acc_t* ev[6];

  bool edited() const {  // the cell's pass (i, f, g, o, c) has edits
    return ek[0] != nullptr || ek[1] != nullptr || ek[2] != nullptr || ek[3] != nullptr || ek[4] != nullptr;
  }
  bool valid(int64_t t, int64_t b) const { return lengths == nullptr || t < lengths[b]; }
  int64_t row(int64_t t, int64_t b) const { return t * B + b; }
  // Row of a chunk buffer.
  int64_t crow(int64_t t, int64_t b) const { return (t - t0) * B + b; }
  // Without `save` (inference) the buffers only backward reads hold one step (hin two: this and the next).
  int64_t srow(int64_t t, int64_t b) const { return save ? row(t, b) : b; }
  int64_t hrow(int64_t t, int64_t b) const { return (save ? t : (t & 1)) * B + b; }
  acc_t zoneout_c(int64_t t, int64_t b, int64_t j) const { return z_c ? z_c[row(t, b) * H + j] : zp; }
  acc_t zoneout_h(int64_t t, int64_t b, int64_t k) const { return z_h ? z_h[row(t, b) * R + k] : zp; }
};

// The rows (H values each) of the cell's edits at step t, row b, for gates_forward and gates_backward: ek, ev[0..3]
// of i, f, g, o, [4] of c' (when c_in_cell: no zoneout; else keep 1, value 0), ek[5] the keep of c after zoneout's
// mix (c's when not c_in_cell, else 1). Records without an edit get keep 1, value 0.
template <typename scalar_t, typename acc_t>
inline void edit_rows(const Layer<scalar_t, acc_t>& L, int64_t t, int64_t b, bool c_in_cell, const acc_t** ek,
                      const acc_t** ev) {
  const int64_t H = L.H, e = L.row(t, b) * H;
  const acc_t* ones = constant_row<acc_t>(H, 1);
  const acc_t* zeros = constant_row<acc_t>(H, 0);
  for (int k = 0; k < 5; ++k) {
    const bool here = L.ek[k] != nullptr && (k != kEditC || c_in_cell);
    ek[k] = here ? L.ek[k] + e : ones;
    ev[k] = here ? L.ev[k] + e : zeros;
  }
  ek[5] = L.ek[kEditC] != nullptr && !c_in_cell ? L.ek[kEditC] + e : ones;
  ev[5] = zeros;
}

// State h after step t for row b, given the cell's new h (h_new, R values; ignored past the row's length):
// zoneout mix, y_t, and the next step's recurrent GEMM input h * mask.
template <typename scalar_t, typename acc_t, typename in_t>
inline void finish_h(const Layer<scalar_t, acc_t>& L, int64_t t, int64_t b, const in_t* __restrict h_new) {
  const int64_t R = L.R;
  acc_t* __restrict hs = L.h + b * R;
  scalar_t* __restrict y = L.y + L.row(t, b) * R;
  if (L.valid(t, b) && L.ek[kEditH]) {  // intervened: the edit of h after the mix
    const acc_t* __restrict ek = L.ek[kEditH] + L.row(t, b) * R;
    const acc_t* __restrict ev = L.ev[kEditH] + L.row(t, b) * R;
    for (int64_t k = 0; k < R; ++k) {
      acc_t z = L.zoneout_h(t, b, k);
      hs[k] = ek[k] * (z * hs[k] + (acc_t(1) - z) * acc_t(h_new[k])) + ev[k];
      y[k] = scalar_t(hs[k]);
    }
  } else if (L.valid(t, b)) {
    for (int64_t k = 0; k < R; ++k) {
      acc_t z = L.zoneout_h(t, b, k);
      hs[k] = z * hs[k] + (acc_t(1) - z) * acc_t(h_new[k]);
      y[k] = scalar_t(hs[k]);
    }
  } else {
    for (int64_t k = 0; k < R; ++k) y[k] = scalar_t(0);
  }
  if (t + 1 < L.T) {
    scalar_t* __restrict hin = L.hin + L.hrow(t + 1, b) * R;
    if (L.mask) {
      for (int64_t k = 0; k < R; ++k) hin[k] = scalar_t(hs[k] * L.mask[b * R + k]);
    } else {
      for (int64_t k = 0; k < R; ++k) hin[k] = scalar_t(hs[k]);
    }
  }
}

// Step t's gates, in place in gt (GH), and c' (H) from c = c_{t-1} (H).
// kPlain (no layer norm): the pre-activations are a_x (ax, GH; may be gt itself) + a_h (ah, GH) + bias, summed
// here, and m = c', so tm = tanh(c') and h = o * tm (H each) are written too. Otherwise gt already holds the
// pre-activations and tm, h are left to the caller.
// kEdit: interventions, v' = k v + v0 with ek, ev the rows (H each) of i, f, g, o and c' (edit_rows): each gate
// right after its activation and c' right after it is computed, so the edited values feed c', o and h.
// kCoupled, kPlain, kEdit are template arguments, not runtime bools: GCC will not vectorise a select on a
// loop-invariant flag.
template <bool kCoupled, bool kPlain, bool kEdit = false, typename acc_t, typename ax_t, typename ah_t>
inline void gates_forward(int64_t H, acc_t* gt, const ax_t* ax, const ah_t* __restrict ah, const acc_t* __restrict bias,
                          const acc_t* __restrict c, const acc_t* __restrict peep, acc_t* __restrict c_new,
                          acc_t* __restrict tm, acc_t* __restrict h, const acc_t* const* ek = nullptr,
                          const acc_t* const* ev = nullptr) {
  const acc_t* p_i = peep;
  const acc_t* p_f = peep + H;
  const acc_t* p_o = peep + 2 * H;
  const acc_t* __restrict k_i = kEdit ? ek[0] : nullptr, * __restrict v_i = kEdit ? ev[0] : nullptr;
  const acc_t* __restrict k_f = kEdit ? ek[1] : nullptr, * __restrict v_f = kEdit ? ev[1] : nullptr;
  const acc_t* __restrict k_g = kEdit ? ek[2] : nullptr, * __restrict v_g = kEdit ? ev[2] : nullptr;
  const acc_t* __restrict k_o = kEdit ? ek[3] : nullptr, * __restrict v_o = kEdit ? ev[3] : nullptr;
  const acc_t* __restrict k_c = kEdit ? ek[4] : nullptr, * __restrict v_c = kEdit ? ev[4] : nullptr;
#pragma omp simd
  for (int64_t j = 0; j < H; ++j) {
    acc_t a_i = gt[j], a_f = gt[H + j], a_g = gt[2 * H + j], a_o = gt[3 * H + j];
    if (kPlain) {
      a_i = acc_t(ax[j]) + acc_t(ah[j]) + bias[j];
      a_f = acc_t(ax[H + j]) + acc_t(ah[H + j]) + bias[H + j];
      a_g = acc_t(ax[2 * H + j]) + acc_t(ah[2 * H + j]) + bias[2 * H + j];
      a_o = acc_t(ax[3 * H + j]) + acc_t(ah[3 * H + j]) + bias[3 * H + j];
    }
    acc_t i = sigmoid(a_i + p_i[j] * c[j]);
    if (kEdit) i = k_i[j] * i + v_i[j];
    acc_t f = kCoupled ? acc_t(1) - i : sigmoid(a_f + p_f[j] * c[j]);
    if (kEdit) f = k_f[j] * f + v_f[j];
    acc_t g = tanh_(a_g);
    if (kEdit) g = k_g[j] * g + v_g[j];
    acc_t cn = f * c[j] + i * g;
    if (kEdit) cn = k_c[j] * cn + v_c[j];
    acc_t o = sigmoid(a_o + p_o[j] * cn);
    if (kEdit) o = k_o[j] * o + v_o[j];
    gt[j] = i;
    gt[H + j] = f;
    gt[2 * H + j] = g;
    gt[3 * H + j] = o;
    c_new[j] = cn;
    if (kPlain) {
      tm[j] = tanh_(cn);
      h[j] = o * tm[j];
    }
  }
}

// The same step backward: from dcn (H, grad of c' through m), dc (H, grad of the state c_t, replaced by that of
// c_{t-1}), z (H, zoneout keep factor of c) and dr (H, grad of o * tanh(m)) to da (GH, grad of the pre-activations).
// kEdit: gt holds the edited gates; ek, ev are the edit rows (edit_rows) of i, f, g, o, c' (edited where the cell
// computes it) and, at index 5, c after zoneout's mix (keep only). Without kEdit every keep is 1: today's code.
template <bool kCoupled, bool kEdit = false, typename acc_t, typename in_t>
inline void gates_backward(int64_t H, const acc_t* __restrict gt, const acc_t* __restrict tm,
                           const acc_t* __restrict c_prev, const acc_t* __restrict peep, const in_t* __restrict dr,
                           const acc_t* __restrict dcn, const acc_t* __restrict z, acc_t* __restrict dc,
                           acc_t* __restrict da, const acc_t* const* ek = nullptr, const acc_t* const* ev = nullptr) {
  const acc_t* p_i = peep;
  const acc_t* p_f = peep + H;
  const acc_t* p_o = peep + 2 * H;
  const acc_t* __restrict ek_i = kEdit ? ek[0] : nullptr, * __restrict ev_i = kEdit ? ev[0] : nullptr;
  const acc_t* __restrict ek_f = kEdit ? ek[1] : nullptr, * __restrict ev_f = kEdit ? ev[1] : nullptr;
  const acc_t* __restrict ek_g = kEdit ? ek[2] : nullptr, * __restrict ev_g = kEdit ? ev[2] : nullptr;
  const acc_t* __restrict ek_o = kEdit ? ek[3] : nullptr, * __restrict ev_o = kEdit ? ev[3] : nullptr;
  const acc_t* __restrict ek_c = kEdit ? ek[4] : nullptr, * __restrict ek_z = kEdit ? ek[5] : nullptr;
#pragma omp simd
  for (int64_t j = 0; j < H; ++j) {
    acc_t i = gt[j], f = gt[H + j], g = gt[2 * H + j], o = gt[3 * H + j];
    // The keeps of the edits, and the gates before them (where the activations' derivatives are taken).
    acc_t k_i = 1, k_f = 1, k_g = 1, k_o = 1, k_c = 1, k_z = 1;
    acc_t i_ = i, f_ = f, g_ = g, o_ = o;
    if (kEdit) {
      k_i = ek_i[j], k_f = ek_f[j], k_g = ek_g[j], k_o = ek_o[j], k_c = ek_c[j], k_z = ek_z[j];
      i_ = unedited(i, k_i, ev_i[j]), f_ = unedited(f, k_f, ev_f[j]);
      g_ = unedited(g, k_g, ev_g[j]), o_ = unedited(o, k_o, ev_o[j]);
    }
    acc_t dcz = k_z * dc[j];  // grad of c_t before its edit after zoneout's mix
    acc_t da_o = acc_t(dr[j]) * tm[j] * k_o * o_ * (acc_t(1) - o_);
    acc_t d_new = k_c * (dcn[j] + (acc_t(1) - z[j]) * dcz + p_o[j] * da_o);  // grad of c' (before zoneout)
    acc_t d_prev = z[j] * dcz + d_new * f;                                   // grad of c_{t-1}
    acc_t di = d_new * g, df = d_new * c_prev[j], dg = d_new * i;
    if (kCoupled) di -= k_f * df;
    acc_t da_i = k_i * di * i_ * (acc_t(1) - i_);
    acc_t da_f = kCoupled ? acc_t(0) : k_f * df * f_ * (acc_t(1) - f_);
    da[j] = da_i;
    da[H + j] = da_f;
    da[2 * H + j] = k_g * dg * (acc_t(1) - g_ * g_);
    da[3 * H + j] = da_o;
    dc[j] = d_prev + p_i[j] * da_i + p_f[j] * da_f;
  }
}

// Scratch values forward_row needs per thread.
inline int64_t forward_scratch(int64_t H, bool ln) { return ln ? 10 * H : H; }

// Forward pointwise pass of step t, row b. ah: (GH) row of h_in W_hh^T. scratch: forward_scratch(H, ln) values.
template <typename scalar_t, typename acc_t>
inline void forward_row(const Layer<scalar_t, acc_t>& L, int64_t t, int64_t b, const scalar_t* __restrict ah,
                        acc_t* __restrict scratch) {
  const int64_t H = L.H, GH = 4 * H, r = L.crow(t, b), s = L.srow(t, b);
  acc_t* gt = L.gates + r * GH;
  acc_t* cs = L.cseq + r * H;
  acc_t* tm = L.tanhm + s * H;
  acc_t* h = scratch;    // (H) o * tanh(m)
  if (!L.valid(t, b)) {  // past the end: state unchanged, every record 0 (so backward's rebuild gives xhat = 0)
    std::fill(gt, gt + GH, acc_t(0));
    std::fill(cs, cs + H, acc_t(0));
    std::fill(tm, tm + H, acc_t(0));
    if (L.cnew) std::fill(L.cnew + s * H, L.cnew + (s + 1) * H, acc_t(0));
    if (L.ln) {
      std::fill(L.mean + s * 3, L.mean + (s + 1) * 3, acc_t(0));
      std::fill(L.rstd + s * 3, L.rstd + (s + 1) * 3, acc_t(0));
    }
    if (L.proj) {
      std::fill(L.hraw + s * H, L.hraw + (s + 1) * H, scalar_t(0));
    } else {
      finish_h(L, t, b, h);
    }
    return;
  }
  const scalar_t* ax = L.ax + r * GH;        // may be gt itself (gates overwrite a_x), so not __restrict
  const acc_t* c = L.c + b * H;              // state c_{t-1}; overwritten below, so not __restrict
  acc_t* cn = L.cnew ? L.cnew + s * H : cs;  // c' before zoneout
  // Interventions: the rows of the cell's edits (c's only where the cell computes c': without zoneout).
  const acc_t* ek[6];
  const acc_t* ev[6];
  const bool edited = L.edited();
  if (edited) edit_rows(L, t, b, L.cnew == nullptr, ek, ev);
  if (!L.ln) {  // a = a_x + a_h + b, m = c': all in one pass
    if (edited) {
      if (L.coupled) {
        gates_forward<true, true, true>(H, gt, ax, ah, L.bias, c, L.peep, cn, tm, h, ek, ev);
      } else {
        gates_forward<false, true, true>(H, gt, ax, ah, L.bias, c, L.peep, cn, tm, h, ek, ev);
      }
    } else if (L.coupled) {
      gates_forward<true, true>(H, gt, ax, ah, L.bias, c, L.peep, cn, tm, h);
    } else {
      gates_forward<false, true>(H, gt, ax, ah, L.bias, c, L.peep, cn, tm, h);
    }
  } else {  // a = LN(a_x; gamma_ih) + LN(a_h; gamma_hh) + b,  m = LN(c'; gamma_c, beta_c)
    // The normalised values live in scratch; only their moments are saved (see the top of this file).
    acc_t* xi = scratch + H;  // (GH) normalised a_x
    acc_t* xh = xi + GH;      // (GH) normalised a_h
    acc_t* ch = xh + GH;      // (H) normalised c'
    const Moments<acc_t> mx = moments(ax, GH, L.eps), mh = moments(ah, GH, L.eps);
    normalise(ax, mx, GH, xi);  // before gt is written: ax may be gt
    normalise(ah, mh, GH, xh);
    for (int64_t j = 0; j < GH; ++j) gt[j] = L.gamma_ih[j] * xi[j] + L.gamma_hh[j] * xh[j] + L.bias[j];
    if (edited) {
      if (L.coupled) {
        gates_forward<true, false, true>(H, gt, gt, gt, L.bias, c, L.peep, cn, tm, h, ek, ev);
      } else {
        gates_forward<false, false, true>(H, gt, gt, gt, L.bias, c, L.peep, cn, tm, h, ek, ev);
      }
    } else if (L.coupled) {
      gates_forward<true, false>(H, gt, gt, gt, L.bias, c, L.peep, cn, tm, h);
    } else {
      gates_forward<false, false>(H, gt, gt, gt, L.bias, c, L.peep, cn, tm, h);
    }
    const Moments<acc_t> mc = moments(cn, H, L.eps);
    normalise(cn, mc, H, ch);
    const Moments<acc_t> saved[3] = {mx, mh, mc};
    for (int k = 0; k < 3; ++k) L.mean[s * 3 + k] = saved[k].mean, L.rstd[s * 3 + k] = saved[k].rstd;
    const acc_t* o = gt + 3 * H;
    for (int64_t j = 0; j < H; ++j) {
      tm[j] = tanh_(L.gamma_c[j] * ch[j] + L.beta_c[j]);
      h[j] = o[j] * tm[j];
    }
  }
  // zoneout on c, then the new state
  acc_t* c_state = L.c + b * H;
  if (L.cnew) {
    for (int64_t j = 0; j < H; ++j) {
      acc_t z = L.zoneout_c(t, b, j);
      cs[j] = z * c_state[j] + (acc_t(1) - z) * cn[j];
    }
    if (L.ek[kEditC]) {  // with zoneout c is edited after the mix, as the carried state
      const acc_t* __restrict k = L.ek[kEditC] + L.row(t, b) * H;
      const acc_t* __restrict v = L.ev[kEditC] + L.row(t, b) * H;
      for (int64_t j = 0; j < H; ++j) cs[j] = k[j] * cs[j] + v[j];
    }
  }
  std::memcpy(c_state, cs, H * sizeof(acc_t));
  if (L.proj) {
    scalar_t* __restrict hr = L.hraw + s * H;
    for (int64_t j = 0; j < H; ++j) hr[j] = scalar_t(h[j]);
  } else {
    finish_h(L, t, b, h);
  }
}

// Backward, first half, step t row b: the grad of state h_t (dh_keep + mask * dh_gemm, dh_gemm = (R) row of
// dA_h(t+1) W_hh or null at the last step) plus dy_t, split by zoneout into the part reaching the cell's new h
// (written to dh_new, R values) and the part kept for h_{t-1} (left in dh_keep).
template <typename scalar_t, typename acc_t, typename out_t>
inline void backward_h_row(const Layer<scalar_t, acc_t>& L, int64_t t, int64_t b, const scalar_t* __restrict dh_gemm,
                           out_t* __restrict dh_new) {
  const int64_t R = L.R;
  acc_t* __restrict keep = L.dh_keep + b * R;
  if (dh_gemm) {
    for (int64_t k = 0; k < R; ++k) keep[k] += (L.mask ? L.mask[b * R + k] : acc_t(1)) * acc_t(dh_gemm[k]);
  }
  if (!L.valid(t, b)) {
    for (int64_t k = 0; k < R; ++k) dh_new[k] = out_t(0);
    return;
  }
  const scalar_t* dy = L.dy ? L.dy + L.row(t, b) * R : nullptr;
  if (L.ek[kEditH]) {  // intervened: the grad of h before its edit
    const acc_t* __restrict ek = L.ek[kEditH] + L.row(t, b) * R;
    for (int64_t k = 0; k < R; ++k) {
      acc_t d = ek[k] * (keep[k] + (dy ? acc_t(dy[k]) : acc_t(0)));
      acc_t z = L.zoneout_h(t, b, k);
      dh_new[k] = out_t((acc_t(1) - z) * d);
      keep[k] = z * d;
    }
    return;
  }
  for (int64_t k = 0; k < R; ++k) {
    acc_t d = keep[k] + (dy ? acc_t(dy[k]) : acc_t(0));
    acc_t z = L.zoneout_h(t, b, k);
    dh_new[k] = out_t((acc_t(1) - z) * d);
    keep[k] = z * d;
  }
}

// Backward with ln, step t row b, before the step's pass: the normalised values forward did not keep, from the
// saved mean and rstd: xhat_ih from ax (GH, a_x recomputed by a GEMM), xhat_hh from ah (GH, a_h likewise) and chat
// from c' (saved). ax, ah may be the xhat rows themselves (rebuilt in place), so no __restrict.
template <typename scalar_t, typename acc_t>
inline void rebuild_ln_row(const Layer<scalar_t, acc_t>& L, int64_t t, int64_t b, const scalar_t* ax,
                           const scalar_t* ah) {
  const int64_t H = L.H, GH = 4 * H, r = L.row(t, b), k = L.crow(t, b);
  acc_t* xi = L.xhat_ih + k * GH;
  acc_t* xh = L.xhat_hh + k * GH;
  acc_t* ch = L.chat + k * H;
  if (!L.valid(t, b)) {  // as forward recorded them: 0 (whatever the padding of x holds)
    std::fill(xi, xi + GH, acc_t(0));
    std::fill(xh, xh + GH, acc_t(0));
    std::fill(ch, ch + H, acc_t(0));
    return;
  }
  const acc_t* mean = L.mean + r * 3;
  const acc_t* rstd = L.rstd + r * 3;
  normalise(ax, Moments<acc_t>{mean[0], rstd[0]}, GH, xi);
  normalise(ah, Moments<acc_t>{mean[1], rstd[1]}, GH, xh);
  normalise((L.cnew ? L.cnew : L.cseq) + r * H, Moments<acc_t>{mean[2], rstd[2]}, H, ch);
}

// Backward, second half, step t row b: from dr (H) = grad of o * tanh(m) to dA (GH) and the grad of c_{t-1}.
// scratch: 6H values.
template <typename scalar_t, typename acc_t, typename in_t>
inline void backward_cell_row(const Layer<scalar_t, acc_t>& L, int64_t t, int64_t b, const in_t* __restrict dr,
                              acc_t* __restrict scratch) {
  const int64_t H = L.H, GH = 4 * H, r = L.row(t, b), k = L.crow(t, b);
  if (!L.valid(t, b)) {
    std::fill(L.dA + k * GH, L.dA + (k + 1) * GH, scalar_t(0));
    if (L.ln) {
      std::fill(L.dax + k * GH, L.dax + (k + 1) * GH, scalar_t(0));
      std::fill(L.dah + k * GH, L.dah + (k + 1) * GH, scalar_t(0));
      std::fill(L.dm + k * H, L.dm + (k + 1) * H, acc_t(0));
    }
    return;
  }
  const acc_t* __restrict gt = L.gates + r * GH;
  const acc_t* __restrict tm = L.tanhm + r * H;
  const acc_t* __restrict c_prev = t > 0 ? L.cseq + L.row(t - 1, b) * H : L.c0 + b * H;
  acc_t* __restrict da = scratch;        // (GH) grad of a, in acc_t
  acc_t* __restrict dcn = scratch + GH;  // (H) grad of c' through m
  // through h = o * tanh(m): grad of m, then of c' via LN if any
  if (L.ln) {
    acc_t* __restrict dm = L.dm + k * H;
    for (int64_t j = 0; j < H; ++j) dm[j] = acc_t(dr[j]) * gt[3 * H + j] * (acc_t(1) - tm[j] * tm[j]);
    normalise_backward(dm, L.gamma_c, L.chat + k * H, L.rstd[r * 3 + 2], H, dcn);
  } else {
    for (int64_t j = 0; j < H; ++j) dcn[j] = acc_t(dr[j]) * gt[3 * H + j] * (acc_t(1) - tm[j] * tm[j]);
  }
  acc_t* __restrict z = scratch + GH + H;  // (H) zoneout keep factor of c
  for (int64_t j = 0; j < H; ++j) z[j] = L.cnew ? L.zoneout_c(t, b, j) : acc_t(0);
  if (L.edited()) {  // the edits' rows; c's where the cell computes c' without zoneout, else after the mix (5)
    const acc_t* ek[6];
    const acc_t* ev[6];
    edit_rows(L, t, b, L.cnew == nullptr, ek, ev);
    if (L.coupled) {
      gates_backward<true, true>(H, gt, tm, c_prev, L.peep, dr, dcn, z, L.dc + b * H, da, ek, ev);
    } else {
      gates_backward<false, true>(H, gt, tm, c_prev, L.peep, dr, dcn, z, L.dc + b * H, da, ek, ev);
    }
  } else if (L.coupled) {
    gates_backward<true>(H, gt, tm, c_prev, L.peep, dr, dcn, z, L.dc + b * H, da);
  } else {
    gates_backward<false>(H, gt, tm, c_prev, L.peep, dr, dcn, z, L.dc + b * H, da);
  }
  scalar_t* __restrict dA = L.dA + k * GH;
  for (int64_t j = 0; j < GH; ++j) dA[j] = scalar_t(da[j]);
  if (L.ln) {
    normalise_backward(da, L.gamma_ih, L.xhat_ih + k * GH, L.rstd[r * 3 + 0], GH, L.dax + k * GH);
    normalise_backward(da, L.gamma_hh, L.xhat_hh + k * GH, L.rstd[r * 3 + 1], GH, L.dah + k * GH);
  }
}

}  // namespace lstmkit
