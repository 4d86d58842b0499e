"""The fused engine (``backend="fused"``): lstmkit's LSTM, GRU and Elman RNN recurrences compiled to C++, with
hand-written backpropagation through time. One module per concept, mirroring ``lstmkit/csrc``:

- :mod:`.engine`: the engine itself (``NAME``, ``why_not``, ``run``), which runs a module's layers and directions
  through the layer functions below;
- :mod:`.lstm` (``csrc/lstm_layer.cpp``) and :mod:`.gru_rnn` (``csrc/gru_rnn_layer.cpp``): one layer in one
  direction, with their argument checks (:mod:`.checks`), calling the custom ops of :mod:`.ops` (the C++ with fake
  implementations and autograd, for torch.compile, torch.export and torch.jit.trace; eager calls take a direct
  autograd.Function through the same code, without the op's dispatch cost);
- :mod:`.build`: compiling and loading the C++ once per CPU; :mod:`.cpu`: what this CPU can do and the GEMM
  library and bf16 strategy chosen from it.
"""

from . import build
from .build import is_available, unavailable_reason
from .cpu import SMALL_PRODUCT
from .engine import CELLS, NAME, compute_dtype, faster_than_torch, output_dtype, run, why_not
from .gru_rnn import gru_layer, rnn_layer
from .lstm import lstm_layer

__all__ = ["CELLS", "NAME", "SMALL_PRODUCT",
           "cached_bytes", "compute_dtype", "faster_than_torch", "gru_layer", "is_available",
           "lstm_layer", "output_dtype", "release_memory", "rnn_layer", "run", "unavailable_reason", "why_not"]


def release_memory() -> None:
    """Free the working buffers the engine keeps between calls (``csrc/buffers.h``: up to ``LSTMKIT_CACHE_MB``,
    default 1024 MB, so that a call does not page-fault and zero its few hundred MB afresh every time)."""
    if build.is_available():
        build.module().release_buffers()


def cached_bytes() -> int:
    """Bytes of working buffers the engine holds for reuse right now (0 when it is not built)."""
    return int(build.module().cached_bytes()) if build.is_available() else 0
