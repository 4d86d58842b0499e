r"""The Elman RNN cell, exactly as torch.nn.RNN computes it::

    a   = x_t W_ih^T + b_ih + h W_hh^T + b_hh     the pre-activation
    h_t = tanh(a)    (or relu(a) with nonlinearity="relu")
"""

from __future__ import annotations

import torch
from torch import Tensor

from .base import Cell, Edit, Weights, unedited


class RNNCellMath(Cell):
    gates = 1
    states = ("h",)
    records = ("a", "h")

    def __init__(self, hidden_size: int, proj_size: int = 0, *, nonlinearity: str = "tanh"):
        super().__init__(hidden_size, proj_size)
        self.nonlinearity = nonlinearity
        self.torch_kernel = f"rnn_{nonlinearity}"
        self._act = torch.tanh if nonlinearity == "tanh" else torch.relu

    def step(self, xw: Tensor, state: tuple[Tensor, ...], w: Weights, edit: Edit = unedited):
        (h,) = state                                                             # (B, H)
        a = edit("a", xw + w.hh(h))                                              # (B, H)
        h = edit("h", self._act(a))
        return (h,), (a, h)

    def replay(self, xw: Tensor, hw: Tensor, y: Tensor, state0: tuple[Tensor, ...]) -> tuple:
        return xw + hw, y

    def describe(self) -> str:
        return "" if self.nonlinearity == "tanh" else f"nonlinearity={self.nonlinearity!r}"
