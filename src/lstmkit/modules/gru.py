"""``GRU`` and ``GRUCell``: drop-ins for torch.nn's, with the trace (``r, z, n, h``); equations in
:mod:`lstmkit.cells.gru`."""

from __future__ import annotations

from ..cells import GRUCellMath
from .cell import RecurrentCell
from .recurrent import Recurrent


class GRU(Recurrent):
    """A drop-in for ``torch.nn.GRU``; ``gru.trace(x)`` records ``r, z, n, h`` of every step.
    ``recurrent_dropout`` and ``zoneout`` work as on :class:`lstmkit.LSTM`."""

    mode = "GRU"

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, device=None,
                 dtype=None, *, backend: str = "auto", recurrent_dropout: float = 0.0, zoneout: float = 0.0):
        super().__init__(GRUCellMath, input_size, hidden_size, num_layers, bias, batch_first, dropout,
                         bidirectional, 0, device, dtype, backend=backend, recurrent_dropout=recurrent_dropout,
                         zoneout=zoneout)


class GRUCell(RecurrentCell):
    """A drop-in for ``torch.nn.GRUCell``: ``h = cell(x, h)``."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device=None, dtype=None, *,
                 backend: str = "auto", recurrent_dropout: float = 0.0, zoneout: float = 0.0):
        super().__init__(GRUCellMath, input_size, hidden_size, bias, device, dtype, backend=backend,
                         recurrent_dropout=recurrent_dropout, zoneout=zoneout)
