"""The adding problem, in its two published forms.

``adding`` (Le et al. 2015; Arjovsky et al. 2016): each step is a pair (value, marker) with value ~ U[0, 1];
exactly two markers are 1, one in the first half of the sequence and one in the second. The target, read at
the last step, is the sum of the two marked values. Example (T = 6):

    values  0.3 0.9 0.1 0.5 0.7 0.2
    markers 0   1   0   0   1   0     ->   0.9 + 0.7 = 1.6

Memoryless baseline: always predict 1, MSE = Var(U1 + U2) = 1/6 = 0.167 (0.083 means only one marker was
learned). Solved: held-out MSE < 0.01.

``adding-1997`` (Hochreiter & Schmidhuber 1997, experiment 4): values ~ U[-1, 1]; one of the first ten pairs is
marked (its value X1; set to 0 if it is the first pair), then one of the first T/2 - 1 still unmarked pairs (X2);
all other markers are 0 except the first and last pair's, which are -1. Target 0.5 + (X1 + X2) / 4. A sequence
is processed correctly when the absolute error is below 0.04, and the metric is the fraction of held-out
sequences processed correctly. Memoryless baseline: always predict 0.5, correct when |X1 + X2| < 0.16, which
happens with probability 0.9 (1 - 1.84^2 / 4) + 0.1 * 0.16 = 0.154. Solved: at least 0.99 correct. The paper's
lengths vary in [T, T + T/10]; here every sequence has length T.

In both, the informative inputs are the two marked values, read out at the last step; the counterfactual of a
sequence has other values at the same two marks. An answer is right within 0.1 for ``adding`` (the root of its
solved MSE bar, 0.01) and within 0.04 for ``adding-1997`` (the paper's criterion).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from .base import Batch, Informative, Task


class Adding(Task):
    name = "adding"
    input_size = 2
    output_size = 1
    metric_name = "mse"
    higher_is_better = False
    default_seq_len = 100
    min_seq_len = 2
    baseline = 1 / 6
    criterion = "held-out MSE < 0.01"
    solved_when = ("metric", "<", 0.01)

    def sample(self, n: int, generator: torch.Generator) -> Batch:
        T, half = self._T, self._T // 2
        rows = torch.arange(n)
        values = torch.rand(n, T, generator=generator)  # (B, T)
        first = torch.randint(0, half, (n,), generator=generator)
        second = torch.randint(half, T, (n,), generator=generator)
        markers = torch.zeros(n, T)
        markers[rows, first] = 1.0
        markers[rows, second] = 1.0
        y = values[rows, first] + values[rows, second]  # (B,)
        return Batch(torch.stack([values, markers], dim=-1), y)  # x (B, T, 2)

    def loss(self, out: Tensor, batch: Batch) -> Tensor:
        return F.mse_loss(out[:, -1, 0], batch.y)

    def evaluate(self, out: Tensor, batch: Batch) -> dict:
        mse = self.loss(out, batch).item()
        return {"metric": mse, "loss": mse}


    def informative(self, batch: Batch) -> Informative:
        return _marked(batch)

    def counterfactual(self, batch: Batch, generator: torch.Generator) -> Batch:
        steps, rows = _marked(batch).steps, torch.arange(len(batch)).unsqueeze(1)
        x = batch.x.clone()
        x[rows, steps, 0] = torch.rand(steps.shape, generator=generator)  # (B, 2) new values ~ U[0, 1]
        return Batch(x, x[rows, steps, 0].sum(1))

    def correct(self, out: Tensor, batch: Batch) -> Tensor:
        return (out[:, -1, 0] - batch.y).abs() < 0.1


def _marked(batch: Batch) -> Informative:
    """The two steps whose marker is 1 (B, 2), read out at the last step."""
    B, T = batch.x.shape[:2]
    steps = (batch.x[..., 1] == 1.0).nonzero()[:, 1].view(B, 2)
    return Informative(steps, torch.full((B,), T - 1))


class Adding1997(Task):
    name = "adding-1997"
    input_size = 2
    output_size = 1
    metric_name = "fraction correct (|error| < 0.04)"
    higher_is_better = True
    default_seq_len = 100
    min_seq_len = 24
    baseline = 0.9 * (1 - 1.84**2 / 4) + 0.1 * 0.16
    criterion = "at least 99% of held-out sequences with |error| < 0.04"
    solved_when = ("metric", ">=", 0.99)

    def sample(self, n: int, generator: torch.Generator) -> Batch:
        T = self._T
        rows = torch.arange(n)
        values = torch.rand(n, T, generator=generator) * 2 - 1  # (B, T) ~ U[-1, 1]
        first = torch.randint(0, 10, (n,), generator=generator)
        # the second mark is one of the first T/2 - 1 pairs other than the first mark: draw among T/2 - 2
        # positions and skip over the first mark
        second = torch.randint(0, T // 2 - 2, (n,), generator=generator)
        second = second + (second >= first).long()
        markers = torch.zeros(n, T)
        markers[:, 0] = -1.0
        markers[:, -1] = -1.0
        markers[rows, first] = 1.0
        markers[rows, second] = 1.0
        x1 = torch.where(first == 0, torch.zeros(n), values[rows, first])
        values[rows, first] = x1
        y = 0.5 + (x1 + values[rows, second]) / 4.0  # (B,)
        return Batch(torch.stack([values, markers], dim=-1), y)

    def loss(self, out: Tensor, batch: Batch) -> Tensor:
        return F.mse_loss(out[:, -1, 0], batch.y)

    def evaluate(self, out: Tensor, batch: Batch) -> dict:
        error = (out[:, -1, 0] - batch.y).abs()
        return {"metric": (error < 0.04).float().mean().item(), "loss": self.loss(out, batch).item(),
                "mse": self.loss(out, batch).item()}

    def informative(self, batch: Batch) -> Informative:
        return _marked(batch)

    def counterfactual(self, batch: Batch, generator: torch.Generator) -> Batch:
        steps, rows = _marked(batch).steps, torch.arange(len(batch)).unsqueeze(1)
        values = torch.rand(steps.shape, generator=generator) * 2 - 1  # (B, 2) ~ U[-1, 1]
        values[steps == 0] = 0.0  # a first mark on the first pair has X1 = 0, as in sample
        x = batch.x.clone()
        x[rows, steps, 0] = values
        return Batch(x, 0.5 + values.sum(1) / 4.0)

    def correct(self, out: Tensor, batch: Batch) -> Tensor:
        return (out[:, -1, 0] - batch.y).abs() < 0.04
