// The Python module of the fused engine: the options objects and layer functions of layers.h, and the buffer
// cache's controls. Python constructs an options object, sets its fields by name and passes it to each call.
// Not <torch/extension.h>: it pulls in all of libtorch's C++ API and makes the first-use build ~40% slower.
#include <torch/csrc/utils/pybind.h>

#include "buffers.h"
#include "layers.h"
#include "machine.h"

namespace py = pybind11;

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  using lstmkit::GruRnnOptions;
  using lstmkit::LstmOptions;
  py::class_<LstmOptions>(m, "LstmOptions", "The options of one LSTM layer call (see layers.h)")
      .def(py::init<>())
      .def_readwrite("lengths", &LstmOptions::lengths)
      .def_readwrite("recurrent_mask", &LstmOptions::recurrent_mask)
      .def_readwrite("z_h", &LstmOptions::z_h)
      .def_readwrite("z_c", &LstmOptions::z_c)
      .def_readwrite("zoneout_p", &LstmOptions::zoneout_p)
      .def_readwrite("coupled", &LstmOptions::coupled)
      .def_readwrite("eps", &LstmOptions::eps)
      .def_readwrite("gemm", &LstmOptions::gemm)
      .def_readwrite("save", &LstmOptions::save)
      .def_readwrite("records", &LstmOptions::records)
      .def_readwrite("has_bias", &LstmOptions::has_bias)
      .def_readwrite("has_peephole", &LstmOptions::has_peephole)
      .def_readwrite("edit_keep", &LstmOptions::edit_keep)
      .def_readwrite("edit_value", &LstmOptions::edit_value);
  py::class_<GruRnnOptions>(m, "GruRnnOptions", "The options of one GRU or Elman RNN layer call (see layers.h)")
      .def(py::init<>())
      .def_readwrite("cell", &GruRnnOptions::cell)
      .def_readwrite("lengths", &GruRnnOptions::lengths)
      .def_readwrite("recurrent_mask", &GruRnnOptions::recurrent_mask)
      .def_readwrite("z_h", &GruRnnOptions::z_h)
      .def_readwrite("zoneout_p", &GruRnnOptions::zoneout_p)
      .def_readwrite("gemm", &GruRnnOptions::gemm)
      .def_readwrite("save", &GruRnnOptions::save)
      .def_readwrite("records", &GruRnnOptions::records)
      .def_readwrite("has_bias", &GruRnnOptions::has_bias)
      .def_readwrite("edit_keep", &GruRnnOptions::edit_keep)
      .def_readwrite("edit_value", &GruRnnOptions::edit_value);
  // The layer functions run without the GIL, as torch's own kernels do, so other Python threads run meanwhile.
  // Safe: the arguments are converted to C++ (tensors, options copied by reference to C++ structs) before the
  // release, the functions touch no Python object, and the buffer cache they share is locked (buffers.h).
  using release_gil = py::call_guard<py::gil_scoped_release>;
  m.def("forward", &lstmkit::lstm_forward, release_gil(),
        "One LSTM layer-direction, forward (see lstmkit/engines/fused/lstm.py)");
  m.def("backward", &lstmkit::lstm_backward, release_gil(), "Its BPTT");
  m.def("gru_rnn_forward", &lstmkit::gru_rnn_forward, release_gil(),
        "One GRU or Elman RNN layer-direction, forward (see lstmkit/engines/fused/gru_rnn.py)");
  m.def("gru_rnn_backward", &lstmkit::gru_rnn_backward, release_gil(), "Its BPTT");
  m.def("release_buffers", [] { lstmkit::BufferCache::get().release(); }, "Free the cached working buffers");
  m.def("fma_peak_flops", &lstmkit::fma_peak_flops, "FMA peak (flop/s) of fp32 vector FMAs on n threads (machine.h)",
        py::arg("threads"), py::arg("seconds") = 0.05);
  m.def("resident_product_seconds", &lstmkit::resident_product_seconds,
        "Seconds of one resident-weight product a @ w^T (small_gemm.h), fastest of repeats", py::arg("a"), py::arg("w"),
        py::arg("repeats") = 7, py::arg("calls") = 20);
  m.def("cached_bytes", [] { return lstmkit::BufferCache::get().cached_bytes(); }, "Bytes the cache holds");
}
