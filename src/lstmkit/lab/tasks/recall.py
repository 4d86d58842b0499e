"""Recall after a lag: remember the first symbol, answer when asked.

Inputs are one-hot over 17 channels: 8 key symbols ``A-H`` (0-7), 8 distractors ``a-h`` (8-15) and a query
marker ``?`` (16). With lag L a sequence has L + 1 steps: a key, L - 1 random distractors, the query. The answer,
read at the query step, is the key. Example (L = 5):

    C f a h b ?   ->   C

The lag is the task's ``seq_len``; training one model per lag gives the accuracy-versus-lag curve
(``lstmkit sweep``). Memoryless baseline: chance, 1/8. Solved: held-out accuracy >= 0.99.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .base import Batch, Task, check_seq_len, last_step_accuracy

_KEYS = 8
_QUERY = 16


class Recall(Task):
    name = "recall"
    input_size = 17
    output_size = _KEYS
    metric_name = "accuracy"
    higher_is_better = True
    default_seq_len = 50

    def __init__(self, seq_len: int = 50):
        self._lag = check_seq_len(self.name, seq_len, 1)

    @property
    def seq_len(self) -> int:
        return self._lag + 1

    def config(self) -> dict:
        return {"seq_len": self._lag, "steps_per_sequence": self.seq_len}

    @property
    def baseline(self) -> float:
        return 1 / _KEYS

    @property
    def criterion(self) -> str:
        return "held-out accuracy >= 0.99"

    def solved(self, evals: dict) -> bool:
        return evals["metric"] >= 0.99

    def sample(self, n: int, generator: torch.Generator) -> Batch:
        L = self._lag
        key = torch.randint(0, _KEYS, (n,), generator=generator)  # (B,)
        symbols = torch.randint(_KEYS, 2 * _KEYS, (n, L + 1), generator=generator)  # (B, L + 1) distractors
        symbols[:, 0] = key
        symbols[:, -1] = _QUERY
        return Batch(F.one_hot(symbols, 17).float(), key)

    def loss(self, out: Tensor, batch: Batch) -> Tensor:
        return F.cross_entropy(out[:, -1], batch.y)

    def evaluate(self, out: Tensor, batch: Batch) -> dict:
        return {"metric": last_step_accuracy(out, batch.y), "loss": self.loss(out, batch).item()}
