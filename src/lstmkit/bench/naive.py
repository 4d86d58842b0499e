"""The benchmark's "naive" row: what users write today for a custom cell."""

from __future__ import annotations

import torch
import torch.nn.functional as F


class NaiveLSTM(torch.nn.Module):
    """What users write today for a custom cell: a Python loop over steps, autograd for the backward."""

    def __init__(self, I: int, H: int):
        super().__init__()
        self.cell = torch.nn.LSTMCell(I, H)

    def forward(self, x):                                           # x (T, B, I)
        h = x.new_zeros(x.shape[1], self.cell.hidden_size)
        c = torch.zeros_like(h)
        w_ih, w_hh, b = self.cell.weight_ih, self.cell.weight_hh, self.cell.bias_ih + self.cell.bias_hh
        ys = []
        for x_t in x:
            a = F.linear(x_t, w_ih, b) + F.linear(h, w_hh)          # (B, 4H)
            i, f, g, o = a.chunk(4, dim=-1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
            ys.append(h)
        return torch.stack(ys), (h, c)
