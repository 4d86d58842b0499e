"""Sunspots: forecast the next twelve months of the monthly sunspot number from the past ``seq_len`` months.

Data: monthly mean sunspot numbers, January 1749 - December 2008 (3,120 months; NOAA National Geophysical Data
Center, public domain, shipped in ``lstmkit/lab/data/sunspots_monthly.csv``). The series has the ~11-year
(~132-month) solar cycle, so a forecaster that remembers where in the cycle it is beats one that does not.

Input: the sunspot number / 100 for each month of the window (I = 1). Output, read at the last step: the next 12
months / 100 (O = 12). Windows whose forecast months end before January 1950 train; those whose forecast months
start in January 1950 or later are the test set (697 windows, 1950-2008). Metric: mean absolute error in
sunspots over the 12 forecast months. Example: months Jan 1990 - Dec 2000 in, Jan - Dec 2001 out.

Baseline (the stated one): seasonal naive with the 132-month cycle, each month forecast as the value 132 months
earlier. The evaluation also reports the persistence forecast (every month = the last value seen), which is
the stronger of the two here. Solved: the held-out MAE beats both.
"""

from __future__ import annotations

from importlib import resources

import torch
import torch.nn.functional as F
from torch import Tensor

from .base import Batch, Task

HORIZON = 12
CYCLE = 132  # months in the ~11-year solar cycle
_SCALE = 100.0
_SPLIT_YEAR = 1950


def load_sunspots() -> tuple[Tensor, list[tuple[int, int]]]:
    """The monthly series (3120,) float32 and its (year, month) labels, from the packaged CSV."""
    text = resources.files("lstmkit.lab").joinpath("data/sunspots_monthly.csv").read_text()
    rows = [line.split(",") for line in text.splitlines() if line and not line.startswith(("#", "year"))]
    values = torch.tensor([float(r[2]) for r in rows])
    return values, [(int(r[0]), int(r[1])) for r in rows]


class Sunspots(Task):
    name = "sunspots"
    input_size = 1
    output_size = HORIZON
    metric_name = "MAE (sunspots)"
    higher_is_better = False
    default_seq_len = 264

    def __init__(self, seq_len: int | None = None):
        super().__init__(seq_len)
        series, months = load_sunspots()
        self._series = series / _SCALE  # (N,)
        split = next(k for k, (year, _) in enumerate(months) if year >= _SPLIT_YEAR)
        first_end = max(self._T, CYCLE)  # a window ending at e forecasts e .. e + 11; seasonal naive needs e >= 132
        if split - HORIZON < first_end:
            raise ValueError(f"`seq_len` of task 'sunspots' must leave training windows before {_SPLIT_YEAR}: "
                             f"at most {split - HORIZON}, got {self._T}")
        self._train_ends = torch.arange(first_end, split - HORIZON + 1)  # forecast months < split
        self._test_ends = torch.arange(max(split, first_end), len(series) - HORIZON + 1)
        self.test_size = len(self._test_ends)
        self._baselines = b = self._naive_maes(self._test_ends)
        self.baseline = b["seasonal_naive_mae"]
        self.criterion = (f"held-out MAE below the seasonal-naive ({b['seasonal_naive_mae']:.1f}) and persistence "
                          f"({b['persistence_mae']:.1f}) forecasts'")
        self.solved_when = ("metric", "<", min(b.values()))

    def _windows(self, ends: Tensor) -> Batch:
        s = self._series
        x = torch.stack([s[e - self._T : e] for e in ends.tolist()]).unsqueeze(-1)  # (B, T, 1)
        y = torch.stack([s[e : e + HORIZON] for e in ends.tolist()])  # (B, 12)
        return Batch(x, y)

    def _naive_maes(self, ends: Tensor) -> dict:
        s = self._series
        y = torch.stack([s[e : e + HORIZON] for e in ends.tolist()])  # (B, 12)
        seasonal = torch.stack([s[e - CYCLE : e - CYCLE + HORIZON] for e in ends.tolist()])
        last = s[ends - 1].unsqueeze(1).expand_as(y)
        return {"seasonal_naive_mae": ((seasonal - y).abs().mean() * _SCALE).item(),
                "persistence_mae": ((last - y).abs().mean() * _SCALE).item()}

    def train_batch(self, n: int, generator: torch.Generator) -> Batch:
        pick = torch.randint(0, len(self._train_ends), (n,), generator=generator)
        return self._windows(self._train_ends[pick])

    def test_set(self) -> Batch:
        return self._windows(self._test_ends)

    def sample(self, n: int, generator: torch.Generator) -> Batch:
        return self.train_batch(n, generator)

    def loss(self, out: Tensor, batch: Batch) -> Tensor:
        return F.mse_loss(out[:, -1], batch.y)

    def evaluate(self, out: Tensor, batch: Batch) -> dict:
        mae = ((out[:, -1] - batch.y).abs().mean() * _SCALE).item()
        return {"metric": mae, "loss": self.loss(out, batch).item(), **self._baselines}
