"""What every memory-lab task is: a seeded generator of train batches, a fixed held-out test set, a loss, a
metric with its memoryless baseline, and a stated "solved" criterion.

A model sees ``x`` of shape ``(B, T, I)`` and returns one output per step, ``(B, T, O)``; the task decides which
steps count (the last one, or every step under ``mask``). Every random draw goes through the ``torch.Generator``
the caller passes, so a batch is a pure function of that generator's seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

# The held-out test set of a synthetic task is drawn from this seed, which no training stream uses (training
# streams are seeded from (run seed, step) through numpy's SeedSequence, see lstmkit.lab.seeds).
TEST_SEED = 2**62 + 1


@dataclass
class Batch:
    """``x`` (B, T, I) float; ``y`` the targets (shape per task); ``mask`` (B, T) bool for per-step tasks."""

    x: Tensor
    y: Tensor
    mask: Tensor | None = None

    def __len__(self) -> int:
        return self.x.shape[0]

    def slice(self, start: int, stop: int) -> Batch:
        mask = None if self.mask is None else self.mask[start:stop]
        return Batch(self.x[start:stop], self.y[start:stop], mask)


class Task:
    """Base class. A subclass sets the class attributes and implements ``sample`` (or ``train_batch`` and
    ``test_set`` when it draws from a fixed data set), ``loss`` and ``evaluate``."""

    name: str = ""
    input_size: int = 0
    output_size: int = 0
    metric_name: str = ""
    higher_is_better: bool = True
    default_seq_len: int | None = None
    test_size: int = 1024

    @property
    def seq_len(self) -> int:
        """Steps per sequence the model reads (the longest, for variable-length tasks)."""
        raise NotImplementedError

    @property
    def baseline(self) -> float:
        """The metric a memoryless predictor reaches (each task documents which predictor)."""
        raise NotImplementedError

    @property
    def criterion(self) -> str:
        """The "solved" criterion in words, for logs and READMEs."""
        raise NotImplementedError

    def solved(self, evals: dict) -> bool:
        raise NotImplementedError

    def sample(self, n: int, generator: torch.Generator) -> Batch:
        raise NotImplementedError

    def train_batch(self, n: int, generator: torch.Generator) -> Batch:
        return self.sample(n, generator)

    def test_set(self) -> Batch:
        return self.sample(self.test_size, torch.Generator().manual_seed(TEST_SEED))

    def loss(self, out: Tensor, batch: Batch) -> Tensor:
        raise NotImplementedError

    def evaluate(self, out: Tensor, batch: Batch) -> dict:
        """Test-set figures: always ``metric`` (named ``metric_name``) and ``loss``, plus task extras."""
        raise NotImplementedError

    def config(self) -> dict:
        """The task's parameters, as written to a run's config.json."""
        return {"seq_len": self.seq_len}

    def better(self, a: float, b: float) -> bool:
        """True when metric ``a`` beats ``b``."""
        return a > b if self.higher_is_better else a < b


def last_step_accuracy(out: Tensor, y: Tensor) -> float:
    return (out[:, -1].argmax(-1) == y).float().mean().item()  # out (B, T, C), y (B,)


def check_seq_len(task: str, seq_len: int, minimum: int) -> int:
    if isinstance(seq_len, bool) or not isinstance(seq_len, int):
        raise TypeError(f"`seq_len` of task {task!r} must be an int, got {type(seq_len).__name__} ({seq_len!r})")
    if seq_len < minimum:
        raise ValueError(f"`seq_len` of task {task!r} must be at least {minimum}, got {seq_len}")
    return seq_len
