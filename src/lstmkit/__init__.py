"""lstmkit: torch.nn.LSTM/GRU/RNN drop-ins whose gates you can open.

    >>> import torch, lstmkit
    >>> lstm = lstmkit.LSTM(10, 20, batch_first=True)
    >>> output, (h_n, c_n) = lstm(torch.randn(1, 5, 10))
    >>> trace = lstm.trace(torch.randn(1, 5, 10))
    >>> trace[0, 0].f.shape          # the forget gate of layer 0, direction 0, at every step
    torch.Size([1, 5, 20])
"""

from . import init
from .cells import Cell, Weights
from .errors import InputError, InputTypeError
from .interventions import Intervention, ablate, add, clamp, patch, scale
from .modules import GRU, LSTM, RNN, GRUCell, LSTMCell, Recurrent, RecurrentCell, RNNCell
from .trace import Trace

__version__ = "0.1.0"

__all__ = ["LSTM", "LSTMCell", "GRU", "GRUCell", "RNN", "RNNCell", "Recurrent", "RecurrentCell", "Cell",
           "Weights", "Trace", "InputError", "InputTypeError", "init", "Intervention", "clamp", "scale", "add",
           "ablate", "patch"]
