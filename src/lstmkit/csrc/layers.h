// The layer functions module.cpp binds to Python (one layer in one direction each; see lstmkit/engines/fused.py
// for the LSTM's contract and lstmkit/engines/fused_gru_rnn.py for the GRU's and Elman RNN's).
#pragma once

#include <ATen/ATen.h>

#include <vector>

#include "aten_util.h"

namespace lstmkit {

using at::Tensor;

// Steps per chunk of a streaming forward or a backward (lstm_layer.cpp): K * B ~ 1024 rows.
int64_t chunk_steps(int64_t T, int64_t B);

std::vector<Tensor> lstm_forward(const Tensor& x, const Tensor& h0, const Tensor& c0, const Tensor& w_ih,
                                 const Tensor& w_hh, const Tensor& bias, const Tensor& peephole,
                                 const OptTensor& w_hr, const OptTensor& lengths, const OptTensor& gamma_ih,
                                 const OptTensor& gamma_hh, const OptTensor& gamma_c, const OptTensor& beta_c,
                                 bool coupled, const OptTensor& recurrent_mask, const OptTensor& z_c,
                                 const OptTensor& z_h, double zoneout_p, double eps, int64_t gemm_id, bool save,
                                 bool records);

std::vector<Tensor> lstm_backward(const OptTensor& dy, const OptTensor& dh_n, const OptTensor& dc_n,
                                  const Tensor& x, const Tensor& c0, const Tensor& w_ih, const Tensor& w_hh,
                                  const Tensor& bias, const Tensor& peephole, const OptTensor& w_hr,
                                  const OptTensor& lengths, const OptTensor& gamma_ih, const OptTensor& gamma_hh,
                                  const OptTensor& gamma_c, const OptTensor& beta_c, bool coupled,
                                  const OptTensor& recurrent_mask, const OptTensor& z_c, const OptTensor& z_h,
                                  double zoneout_p, int64_t gemm_id, const Tensor& hin, const OptTensor& hraw,
                                  const Tensor& gates, const Tensor& cseq, const OptTensor& cnew,
                                  const Tensor& tanhm, const OptTensor& mean, const OptTensor& rstd, bool has_bias,
                                  bool has_peephole, bool need_dx);

std::vector<Tensor> gru_rnn_forward(int64_t cell, const Tensor& x, const Tensor& h0, const Tensor& w_ih,
                                    const Tensor& w_hh, const Tensor& b_ih, const Tensor& b_hh,
                                    const OptTensor& lengths, const OptTensor& recurrent_mask,
                                    const OptTensor& z_h, double zoneout_p, int64_t gemm_id, bool save,
                                    bool records);

std::vector<Tensor> gru_rnn_backward(int64_t cell, const OptTensor& dy, const OptTensor& dh_n, const Tensor& x,
                                     const Tensor& h0, const Tensor& w_ih, const Tensor& w_hh,
                                     const OptTensor& lengths, const OptTensor& recurrent_mask,
                                     const OptTensor& z_h, double zoneout_p, int64_t gemm_id,
                                     const Tensor& hin, const Tensor& gates, const OptTensor& hn,
                                     const OptTensor& hseq, bool has_bias, bool need_dx);

}  // namespace lstmkit
