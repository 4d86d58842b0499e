"""``LSTM`` and ``LSTMCell``: torch.nn's, plus the gate trace and the variants torch.nn lacks.

The equations, variants included, are in :mod:`lstmkit.cells.lstm`. Defaults give exactly torch.nn's module;
with no variant switched on, ``backend="auto"`` runs torch's own fused kernel.
"""

from __future__ import annotations

from functools import partial

import torch

from .. import _checks
from ..cells import LSTMCellMath
from ..errors import InputError
from .cell import RecurrentCell
from .recurrent import Recurrent


def _lstm_math(peephole, layer_norm, coupled):
    return partial(LSTMCellMath, peephole=_checks.flag("peephole", peephole),
                   layer_norm=_checks.flag("layer_norm", layer_norm), coupled=_checks.flag("coupled", coupled))


def _set_forget_bias(bias_ih: torch.Tensor | None, bias_hh: torch.Tensor | None, value: float, H: int) -> None:
    """torch adds b_ih and b_hh, so the forget gate's effective bias is their sum: put it all in b_ih."""
    assert bias_ih is not None and bias_hh is not None      # forget_bias needs bias=True (checked at construction)
    with torch.no_grad():
        bias_ih[H:2 * H].fill_(value)
        bias_hh[H:2 * H].zero_()


def _forget_bias(value, bias: bool):
    if value is None:
        return None
    value = _checks.finite_float("forget_bias", value)
    if not bias:
        raise InputError(f"`forget_bias`={value} needs bias=True: a module without biases has none to set")
    return value


class LSTM(Recurrent):
    r"""A drop-in for ``torch.nn.LSTM`` (same arguments, parameters, ``state_dict``, inputs and results).

    Beyond torch.nn (keyword-only; see :mod:`lstmkit.cells.lstm` for the equations):

    - ``peephole``, ``layer_norm``, ``coupled``: the Gers 2000 peepholes, Ba 2016 layer normalisation and
      the coupled input-forget gate of Greff 2017; any combination.
    - ``forget_bias``: start the forget gate's effective bias (``b_ih + b_hh`` in its rows) at this value
      (Jozefowicz et al. 2015 recommend 1; long lags need more, see the memory lab).
    - ``recurrent_dropout``, ``zoneout``: regularisers inside the recurrence (see :class:`Recurrent`).
    - ``backend``: ``"auto"``, ``"torch"`` or ``"reference"``.

    ``lstm.trace(x, hx)`` runs like ``forward`` and also returns ``i, f, g, o, c, h`` of every step, layer and
    direction.
    """

    mode = "LSTM"

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, proj_size: int = 0,
                 device=None, dtype=None, *, backend: str = "auto", peephole: bool = False,
                 layer_norm: bool = False, coupled: bool = False, forget_bias: float | None = None,
                 recurrent_dropout: float = 0.0, zoneout: float = 0.0):
        self.forget_bias = _forget_bias(forget_bias, bias)
        super().__init__(_lstm_math(peephole, layer_norm, coupled), input_size, hidden_size, num_layers, bias,
                         batch_first, dropout, bidirectional, proj_size, device, dtype, backend=backend,
                         recurrent_dropout=recurrent_dropout, zoneout=zoneout)

    def reset_parameters(self) -> None:
        super().reset_parameters()
        if self.forget_bias is not None:
            for w in (w for row in self._weights() for w in row):
                _set_forget_bias(w.bias_ih, w.bias_hh, self.forget_bias, self.hidden_size)

    def extra_repr(self) -> str:
        s = super().extra_repr()
        return s + (f", forget_bias={self.forget_bias}" if self.forget_bias is not None else "")


class LSTMCell(RecurrentCell):
    """A drop-in for ``torch.nn.LSTMCell``: ``(h, c) = cell(x, (h, c))``, with the same variants as
    :class:`LSTM` (``peephole``, ``layer_norm``, ``coupled``, ``forget_bias``, ``recurrent_dropout``,
    ``zoneout``; see :class:`lstmkit.RecurrentCell` for how a single step handles the last two)."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device=None, dtype=None, *,
                 backend: str = "auto", peephole: bool = False, layer_norm: bool = False, coupled: bool = False,
                 forget_bias: float | None = None, recurrent_dropout: float = 0.0, zoneout: float = 0.0):
        self.forget_bias = _forget_bias(forget_bias, bias)
        super().__init__(_lstm_math(peephole, layer_norm, coupled), input_size, hidden_size, bias, device, dtype,
                         backend=backend, recurrent_dropout=recurrent_dropout, zoneout=zoneout)

    def reset_parameters(self) -> None:
        super().reset_parameters()
        if self.forget_bias is not None:
            _set_forget_bias(self.bias_ih, self.bias_hh, self.forget_bias, self.hidden_size)
