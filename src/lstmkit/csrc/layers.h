// The C++ boundary of the fused engine: the layer functions module.cpp binds to Python (one layer in one direction
// each) and the options object each takes. The contracts are in lstmkit/engines/fused/lstm.py (LSTM) and
// lstmkit/engines/fused/gru_rnn.py (GRU, Elman RNN), which fill the options by name.
//
// Shapes: T steps, B batch, I input, H hidden, R = P (projection) or H; G gates per cell (LSTM 4, GRU 3, RNN 1),
// so GH = G * H is the width of the gates. acc_t is the accumulation dtype: float for bfloat16, else x's dtype.
#pragma once

#include <ATen/ATen.h>

#include <vector>

#include "aten_util.h"

namespace lstmkit {

using at::Tensor;

// The non-differentiable arguments of one LSTM layer call. Optional tensors are absent (None) where the layer
// has no such term; when given they are contiguous and in acc_t (lengths: int64).
struct LstmOptions {
  OptTensor lengths;          // (B) steps of each row, in [0, T]; absent: every row runs T steps
  OptTensor recurrent_mask;   // (B, R) multiplies h before W_hh, already scaled by 1/(1-p)
  OptTensor z_h, z_c;         // (T, B, R), (T, B, H) zoneout keep-masks (training), in the state order (h, c)
  double zoneout_p = 0;       // eval zoneout probability, used where there are no masks (0 = none)
  bool coupled = false;       // f = 1 - i
  double eps = 1e-5;          // layer norm's epsilon
  int64_t gemm = 0;           // the GEMM library (gemm.h: 0 MKL, 1 oneDNN), chosen in lstmkit/engines/fused/cpu.py
  bool save = true;           // a backward will follow: keep every step of what it reads
  bool records = true;        // return the gates and c_seq of every step (a trace)
  bool has_bias = false;      // backward returns db
  bool has_peephole = false;  // backward returns dpeephole
  // Interventions (lstmkit/interventions.py): affine edits v' = keep * v + value in engine order, one per record
  // i, f, g, o, c, h (absent: that record has none; empty lists: none at all). (T, B, H) each, h's (T, B, R).
  std::vector<OptTensor> edit_keep, edit_value;
};

// The same for one GRU or Elman RNN layer call (one state, h, so one zoneout mask).
struct GruRnnOptions {
  int64_t cell = 0;          // CellKind (gru_rnn_cell.h): 0 RNN tanh, 1 RNN relu, 2 GRU
  OptTensor lengths;         // (B) steps of each row, in [0, T]
  OptTensor recurrent_mask;  // (B, H)
  OptTensor z_h;             // (T, B, H) zoneout keep-mask (training)
  double zoneout_p = 0;      // eval zoneout probability (0 = none)
  int64_t gemm = 0;          // as LstmOptions::gemm
  bool save = true;          // as LstmOptions::save
  bool records = true;       // return the gates of every step (a trace)
  bool has_bias = false;     // backward returns db_ih, db_hh
  // Interventions, as LstmOptions': per record RNN a, h or GRU r, z, n, h; (T, B, H) each.
  std::vector<OptTensor> edit_keep, edit_value;
};

// Steps per chunk of a streaming forward or a backward (lstm_layer.cpp): K * B ~ 1024 rows.
int64_t chunk_steps(int64_t T, int64_t B);

// x (T, B, I), h0 (B, R), c0 (B, H) in acc_t, w_ih (GH, I), w_hh (GH, R), bias (GH) = b_ih + b_hh and
// peephole (3, H) in acc_t (zeros when the layer has none), w_hr (P, H) or absent, the layer norm's gamma_ih,
// gamma_hh (GH), gamma_c, beta_c (H) in acc_t or all absent. Returns y, h_n, c_n, gates, c_seq, then what backward
// reads: hin, hraw, cnew, tanhm, mean, rstd.
std::vector<Tensor> lstm_forward(const Tensor& x, const Tensor& h0, const Tensor& c0, const Tensor& w_ih,
                                 const Tensor& w_hh, const Tensor& bias, const Tensor& peephole, const OptTensor& w_hr,
                                 const OptTensor& gamma_ih, const OptTensor& gamma_hh, const OptTensor& gamma_c,
                                 const OptTensor& beta_c, const LstmOptions& o);

// Its BPTT: the grads of y, h_n, c_n (each absent where unused), forward's inputs and what it saved. need_dx is
// the backward call's own (whether x needs a grad), not the layer's. Returns dx, dh0, dc0, dw_ih, dw_hh, db,
// dw_hr, dpeephole, dgamma_ih, dgamma_hh, dgamma_c, dbeta_c.
std::vector<Tensor> lstm_backward(const OptTensor& dy, const OptTensor& dh_n, const OptTensor& dc_n, const Tensor& x,
                                  const Tensor& c0, const Tensor& w_ih, const Tensor& w_hh, const Tensor& bias,
                                  const Tensor& peephole, const OptTensor& w_hr, const OptTensor& gamma_ih,
                                  const OptTensor& gamma_hh, const OptTensor& gamma_c, const OptTensor& beta_c,
                                  const Tensor& hin, const OptTensor& hraw, const Tensor& gates, const Tensor& cseq,
                                  const OptTensor& cnew, const Tensor& tanhm, const OptTensor& mean,
                                  const OptTensor& rstd, bool need_dx, const LstmOptions& o);

// x (T, B, I), h0 (B, H), w_ih (GH, I), w_hh (GH, H), b_ih, b_hh (GH) in acc_t (zeros when the layer has none).
// Returns y, h_n, gates, then what backward reads: hin, hn, hseq.
std::vector<Tensor> gru_rnn_forward(const Tensor& x, const Tensor& h0, const Tensor& w_ih, const Tensor& w_hh,
                                    const Tensor& b_ih, const Tensor& b_hh, const GruRnnOptions& o);

// Its BPTT. Returns dx, dh0, dw_ih, dw_hh, db_ih, db_hh.
std::vector<Tensor> gru_rnn_backward(const OptTensor& dy, const OptTensor& dh_n, const Tensor& x, const Tensor& h0,
                                     const Tensor& w_ih, const Tensor& w_hh, const Tensor& hin, const Tensor& gates,
                                     const OptTensor& hn, const OptTensor& hseq, bool need_dx, const GruRnnOptions& o);

}  // namespace lstmkit
