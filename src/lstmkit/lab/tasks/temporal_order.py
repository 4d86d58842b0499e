"""Temporal order (Hochreiter & Schmidhuber 1997, experiment 6a).

Eight symbols, one-hot: distractors ``a b c d``, start ``B``, end ``E``, and the two that matter, ``X`` and ``Y``.
A sequence of length T starts with ``B``, ends with ``E``, and is random distractors except at two positions:
t1 in [0.1 T, 0.2 T] and t2 in [0.5 T, 0.6 T] (the paper's [10, 20] and [50, 60] at T = 100) hold ``X`` or
``Y``. The class, read at the last step, is the order: XX=0, XY=1, YX=2, YY=3. Example (T = 12, t1 = 1, t2 = 6):

    B X c a d b Y a c d b E   ->   class 1 (XY)

The paper's sequences vary in length between 100 and 110; here every sequence has length T so batches need no
padding. Memoryless baseline: chance, accuracy 1/4. Solved: held-out accuracy >= 0.99 (the paper reports 1
error in 2,560 test sequences). The informative inputs are the X/Y at t1 and t2, read out at the last step; the
counterfactual of a sequence has another class's symbols at the same t1 and t2.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .base import Batch, Informative, Task, last_step_accuracy

SYMBOLS = "abcdBEXY"
_B, _E, _X = 4, 5, 6


class TemporalOrder(Task):
    name = "temporal-order"
    input_size = len(SYMBOLS)
    output_size = 4
    metric_name = "accuracy"
    higher_is_better = True
    default_seq_len = 100
    min_seq_len = 10
    baseline = 0.25
    criterion = "held-out accuracy >= 0.99"
    solved_when = ("metric", ">=", 0.99)

    def __init__(self, seq_len: int | None = None):
        super().__init__(seq_len)
        T = self._T
        self.t1_range = (round(0.1 * T), round(0.2 * T))
        self.t2_range = (round(0.5 * T), round(0.6 * T))

    def sample(self, n: int, generator: torch.Generator) -> Batch:
        T = self._T
        rows = torch.arange(n)
        symbols = torch.randint(0, 4, (n, T), generator=generator)  # (B, T) distractors a-d
        symbols[:, 0] = _B
        symbols[:, -1] = _E
        t1 = torch.randint(self.t1_range[0], self.t1_range[1] + 1, (n,), generator=generator)
        t2 = torch.randint(self.t2_range[0], self.t2_range[1] + 1, (n,), generator=generator)
        xy = torch.randint(0, 2, (n, 2), generator=generator)  # 0 = X, 1 = Y
        symbols[rows, t1] = _X + xy[:, 0]
        symbols[rows, t2] = _X + xy[:, 1]
        x = F.one_hot(symbols, len(SYMBOLS)).float()  # (B, T, 8)
        y = 2 * xy[:, 0] + xy[:, 1]  # (B,)
        return Batch(x, y)

    def loss(self, out: Tensor, batch: Batch) -> Tensor:
        return F.cross_entropy(out[:, -1], batch.y)

    def evaluate(self, out: Tensor, batch: Batch) -> dict:
        return {"metric": last_step_accuracy(out, batch.y), "loss": self.loss(out, batch).item()}

    def informative(self, batch: Batch) -> Informative:
        symbols = batch.x.argmax(-1)  # (B, T)
        steps = (symbols >= _X).nonzero()[:, 1].view(len(batch), 2)  # (B, 2): t1, t2
        return Informative(steps, torch.full((len(batch),), batch.x.shape[1] - 1))

    def counterfactual(self, batch: Batch, generator: torch.Generator) -> Batch:
        y = (batch.y + torch.randint(1, 4, batch.y.shape, generator=generator)) % 4  # another class
        steps, rows = self.informative(batch).steps, torch.arange(len(batch))
        x = batch.x.clone()
        x[rows.unsqueeze(1), steps] = F.one_hot(_X + torch.stack([y // 2, y % 2], 1), len(SYMBOLS)).float()
        return Batch(x, y)

    def correct(self, out: Tensor, batch: Batch) -> Tensor:
        return out[:, -1].argmax(-1) == batch.y
