"""A run's evaluations: the held-out figures, one row per evaluation, and the files that hold the rows.

``metrics.jsonl`` and ``metrics.csv`` hold the same rows: ``step``, ``train_loss`` (the mean since the previous
evaluation; None at step 0, before any training), ``test_loss``, ``metric``, the task's extra figures, ``solved``
and ``elapsed_s``. The rows are strict JSON: a non-finite figure is None (the trainer stops before a non-finite
loss or metric is recorded).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import torch
from torch import nn

from .files import atomic_write_bytes, finite_or_none, to_json
from .tasks import Batch, Task


@torch.no_grad()
def evaluate(model: nn.Module, task: Task, test: Batch, chunk: int = 512) -> dict:
    """The task's test figures over the whole held-out set, computed in chunks to bound memory."""
    was_training = model.training
    model.eval()
    out = torch.cat([model(test.x[k : k + chunk]) for k in range(0, len(test), chunk)])  # (N, T, O)
    model.train(was_training)
    return task.evaluate(out, test)


def evaluation_row(step: int, train_loss: float | None, evals: dict, solved: bool, elapsed_s: float) -> dict:
    """One row of metrics.jsonl/csv from :func:`evaluate`'s figures, in the files' column order."""
    extras = {k: v for k, v in evals.items() if k not in ("metric", "loss")}
    return finite_or_none({"step": step, "train_loss": train_loss, "test_loss": evals["loss"],
                           "metric": evals["metric"], **extras, "solved": solved, "elapsed_s": elapsed_s})


def write_metrics(out_dir: Path, history: list[dict]) -> None:
    atomic_write_bytes(out_dir / "metrics.jsonl", "".join(to_json(row) + "\n" for row in history).encode())
    columns = list(dict.fromkeys(k for row in history for k in row))
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    atomic_write_bytes(out_dir / "metrics.csv", text.getvalue().encode())
