"""Recall after a lag: remember the first symbol, answer when asked.

Inputs are one-hot over 17 channels: 8 key symbols ``A-H`` (0-7), 8 distractors ``a-h`` (8-15) and a query
marker ``?`` (16). With lag L a sequence has L + 1 steps: a key, L - 1 random distractors, the query. The answer,
read at the query step, is the key. Example (L = 5):

    C f a h b ?   ->   C

The lag is the task's ``seq_len``; training one model per lag gives the accuracy-versus-lag curve
(``lstmkit sweep``). Memoryless baseline: chance, 1/8. Solved: held-out accuracy >= 0.99. The informative input
is the key at step 0, read out at the query; the counterfactual of a sequence has another key.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .base import Batch, Informative, Task, last_step_accuracy

_KEYS = 8
_QUERY = 16


class Recall(Task):
    name = "recall"
    input_size = 17
    output_size = _KEYS
    metric_name = "accuracy"
    higher_is_better = True
    default_seq_len = 50  # the lag L
    extra_steps = 1  # the query
    baseline = 1 / _KEYS
    criterion = "held-out accuracy >= 0.99"
    solved_when = ("metric", ">=", 0.99)

    def sample(self, n: int, generator: torch.Generator) -> Batch:
        L = self._T
        key = torch.randint(0, _KEYS, (n,), generator=generator)  # (B,)
        symbols = torch.randint(_KEYS, 2 * _KEYS, (n, L + 1), generator=generator)  # (B, L + 1) distractors
        symbols[:, 0] = key
        symbols[:, -1] = _QUERY
        return Batch(F.one_hot(symbols, 17).float(), key)

    def loss(self, out: Tensor, batch: Batch) -> Tensor:
        return F.cross_entropy(out[:, -1], batch.y)

    def evaluate(self, out: Tensor, batch: Batch) -> dict:
        return {"metric": last_step_accuracy(out, batch.y), "loss": self.loss(out, batch).item()}

    def informative(self, batch: Batch) -> Informative:
        B, T = batch.x.shape[:2]
        return Informative(torch.zeros(B, 1, dtype=torch.long), torch.full((B,), T - 1))

    def counterfactual(self, batch: Batch, generator: torch.Generator) -> Batch:
        key = (batch.y + torch.randint(1, _KEYS, batch.y.shape, generator=generator)) % _KEYS  # another key
        x = batch.x.clone()
        x[:, 0] = F.one_hot(key, 17).float()
        return Batch(x, key)

    def correct(self, out: Tensor, batch: Batch) -> Tensor:
        return out[:, -1].argmax(-1) == batch.y
