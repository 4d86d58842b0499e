"""Copy memory (Arjovsky, Shah & Bengio 2016).

Ten symbols, one-hot: 0 blank, 1-8 data, 9 delimiter. With delay T a sequence has T + 20 steps: ten data
symbols, T - 1 blanks, the delimiter, ten blanks. The target is blank for the first T + 10 steps and then the
ten data symbols, in order. Example (T = 3, shown with three data symbols instead of ten):

    input   5 2 7 0 0 9 0 0 0
    target  0 0 0 0 0 0 5 2 7

Loss and metric: cross-entropy in nats per step over all T + 20 steps. Memoryless baseline: blanks where they
are certain, then a uniform guess over the 8 data symbols, 10 ln 8 / (T + 20) (0.173 at T = 100). Solved: the
ten copied symbols are right (arg-max) for at least 99% of held-out symbols.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from .base import Batch, Task

_N_DATA = 10
_DELIMITER = 9


class Copy(Task):
    name = "copy"
    input_size = 10
    output_size = 10
    metric_name = "cross-entropy (nats/step)"
    higher_is_better = False
    default_seq_len = 100
    extra_steps = 2 * _N_DATA  # the data symbols before the delay, their copy after it
    criterion = "at least 99% of the copied held-out symbols right"
    solved_when = ("copy_accuracy", ">=", 0.99)

    # Task declares `baseline` as a class attribute; here it depends on the length, hence a property.
    @property
    def baseline(self) -> float:  # type: ignore[override]
        return _N_DATA * math.log(8) / self.seq_len

    def sample(self, n: int, generator: torch.Generator) -> Batch:
        T = self._T
        data = torch.randint(1, 9, (n, _N_DATA), generator=generator)  # (B, 10)
        symbols = torch.zeros(n, T + 2 * _N_DATA, dtype=torch.long)  # (B, T + 20)
        symbols[:, :_N_DATA] = data
        symbols[:, T + _N_DATA - 1] = _DELIMITER
        target = torch.zeros_like(symbols)
        target[:, -_N_DATA:] = data
        return Batch(F.one_hot(symbols, 10).float(), target)

    def loss(self, out: Tensor, batch: Batch) -> Tensor:
        return F.cross_entropy(out.reshape(-1, out.shape[-1]), batch.y.reshape(-1))  # over (B * (T + 20))

    def evaluate(self, out: Tensor, batch: Batch) -> dict:
        copied = out[:, -_N_DATA:].argmax(-1) == batch.y[:, -_N_DATA:]  # (B, 10)
        ce = self.loss(out, batch).item()
        return {"metric": ce, "loss": ce, "copy_accuracy": copied.float().mean().item()}
