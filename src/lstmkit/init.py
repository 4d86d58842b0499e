"""Initialisations that make long lags learnable, applied to an existing module in place."""

from __future__ import annotations

import torch

from . import _checks
from .errors import InputError, InputTypeError


def chrono_(module, t_max: float) -> None:
    """Chrono initialisation (Tallec & Ollivier 2018, "Can recurrent neural networks warp time?"):
    ``b_f ~ log U[1, t_max − 1]`` and ``b_i = −b_f``, so forget gates start with characteristic memory times
    spread over ``[1, t_max]`` steps. Works on :class:`lstmkit.LSTM`, :class:`lstmkit.LSTMCell` and torch.nn's
    (the effective biases ``b_ih + b_hh`` are set: all in ``b_ih``, ``b_hh`` zero in those rows)."""
    t_max = _checks.finite_float("t_max", t_max)
    if t_max <= 2:
        raise InputError(f"`t_max` must be greater than 2 (b_f ~ log U[1, t_max - 1]), got {t_max}")
    mode = getattr(module, "mode", None)
    is_cell = isinstance(module, torch.nn.LSTMCell) or type(module).__name__ == "LSTMCell"
    if mode != "LSTM" and not is_cell:
        raise InputTypeError(f"`module` must be an LSTM or LSTMCell, got {type(module).__name__}")
    H = module.hidden_size
    pairs = [(n, n.replace("bias_ih", "bias_hh")) for n, _ in module.named_parameters() if "bias_ih" in n]
    if not pairs:
        raise InputError("`module` has no biases (bias=False), so chrono initialisation has nothing to set")
    with torch.no_grad():
        params = dict(module.named_parameters())
        for ih, hh in pairs:
            b_ih, b_hh = params[ih], params[hh]
            b_f = torch.log(torch.empty(H, dtype=b_ih.dtype, device=b_ih.device).uniform_(1, t_max - 1))
            b_ih[:H] = -b_f          # input gate
            b_ih[H:2 * H] = b_f      # forget gate
            b_hh[:2 * H] = 0
