// The Python module of the fused engine: the layer functions of layers.h and the buffer cache's controls.
// Not <torch/extension.h>: it pulls in all of libtorch's C++ API and makes the first-use build ~40% slower.
#include <torch/csrc/utils/pybind.h>

#include "buffers.h"
#include "layers.h"

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &lstmkit::lstm_forward, "One LSTM layer-direction, forward (see lstmkit/engines/fused.py)");
  m.def("backward", &lstmkit::lstm_backward, "Its BPTT");
  m.def("gru_rnn_forward", &lstmkit::gru_rnn_forward,
        "One GRU or Elman RNN layer-direction, forward (see lstmkit/engines/fused_gru_rnn.py)");
  m.def("gru_rnn_backward", &lstmkit::gru_rnn_backward, "Its BPTT");
  m.def("release_buffers", [] { lstmkit::BufferCache::get().release(); }, "Free the cached working buffers");
  m.def("cached_bytes", [] { return lstmkit::BufferCache::get().cached_bytes(); }, "Bytes the cache holds");
}
