"""``RNN`` and ``RNNCell``: drop-ins for torch.nn's Elman RNN, with the trace (``a, h``); equations in
:mod:`lstmkit.cells.rnn`."""

from __future__ import annotations

from functools import partial

from ..cells import RNNCellMath
from ..errors import InputError, InputTypeError
from .cell import RecurrentCell
from .recurrent import Recurrent

NONLINEARITIES = ("tanh", "relu")


def _rnn_math(nonlinearity):
    if not isinstance(nonlinearity, str):
        raise InputTypeError(f"`nonlinearity` must be 'tanh' or 'relu', got {type(nonlinearity).__name__}")
    if nonlinearity not in NONLINEARITIES:
        raise InputError(f"`nonlinearity` must be 'tanh' or 'relu', got {nonlinearity!r}")
    return partial(RNNCellMath, nonlinearity=nonlinearity)


class RNN(Recurrent):
    """A drop-in for ``torch.nn.RNN`` (``nonlinearity="tanh" | "relu"``); ``rnn.trace(x)`` records the
    pre-activation ``a`` and ``h`` of every step."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, nonlinearity: str = "tanh",
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 device=None, dtype=None, *, backend: str = "auto", recurrent_dropout: float = 0.0,
                 zoneout: float = 0.0):
        super().__init__(_rnn_math(nonlinearity), input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, 0, device, dtype, backend=backend,
                         recurrent_dropout=recurrent_dropout, zoneout=zoneout)
        self.nonlinearity = nonlinearity

    @property
    def mode(self) -> str:
        return f"RNN_{self.nonlinearity.upper()}"


class RNNCell(RecurrentCell):
    """A drop-in for ``torch.nn.RNNCell``: ``h = cell(x, h)``."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, nonlinearity: str = "tanh",
                 device=None, dtype=None, *, backend: str = "auto", recurrent_dropout: float = 0.0,
                 zoneout: float = 0.0):
        super().__init__(_rnn_math(nonlinearity), input_size, hidden_size, bias, device, dtype, backend=backend,
                         recurrent_dropout=recurrent_dropout, zoneout=zoneout)
        self.nonlinearity = nonlinearity
