r"""The GRU cell, exactly as torch.nn.GRU computes it (Cho et al. 2014, with the reset gate applied after the
recurrent product as in cuDNN)::

    r   = σ(x_t W_ir^T + b_ir + h W_hr^T + b_hr)        reset gate
    z   = σ(x_t W_iz^T + b_iz + h W_hz^T + b_hz)        update gate
    n   = tanh(x_t W_in^T + b_in + r ⊙ (h W_hn^T + b_hn))  candidate
    h_t = (1 − z) ⊙ n + z ⊙ h
"""

from __future__ import annotations

import torch
from torch import Tensor

from .base import Cell, Edit, Weights, unedited


class GRUCellMath(Cell):
    gates = 3
    states = ("h",)
    records = ("r", "z", "n", "h")
    torch_kernel = "gru"

    def step(self, xw: Tensor, state: tuple[Tensor, ...], w: Weights, edit: Edit = unedited):
        (h,) = state                                                             # (B, H)
        x_r, x_z, x_n = xw.chunk(3, dim=-1)                                      # (B, H) each
        h_r, h_z, h_n = w.hh(h).chunk(3, dim=-1)                                 # (B, H) each
        r = edit("r", torch.sigmoid(x_r + h_r))
        z = edit("z", torch.sigmoid(x_z + h_z))
        n = edit("n", torch.tanh(x_n + r * h_n))
        h = edit("h", (1 - z) * n + z * h)
        return (h,), (r, z, n, h)

    def replay(self, xw: Tensor, hw: Tensor, y: Tensor, state0: tuple[Tensor, ...]) -> tuple:
        x_r, x_z, x_n = xw.chunk(3, dim=-1)                                      # (T, B, H) each
        h_r, h_z, h_n = hw.chunk(3, dim=-1)
        r = torch.sigmoid(x_r + h_r)
        z = torch.sigmoid(x_z + h_z)
        n = torch.tanh(x_n + r * h_n)
        return r, z, n, y
