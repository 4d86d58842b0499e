"""The memory-lab tasks, by name. ``make_task(name, seq_len)`` builds one; ``TASKS`` lists them."""

from __future__ import annotations

from .adding import Adding, Adding1997
from .base import Batch, Task
from .copy import Copy
from .digits import Digits, PermutedDigits
from .reber import Reber
from .recall import Recall
from .sunspots import Sunspots
from .temporal_order import TemporalOrder

TASKS: dict[str, type[Task]] = {
    task.name: task
    for task in (TemporalOrder, Adding, Adding1997, Copy, Recall, Reber, Digits, PermutedDigits, Sunspots)
}


def make_task(name: str, seq_len: int | None = None) -> Task:
    """The task called ``name`` at length ``seq_len`` (None: the task's default)."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; choose one of {', '.join(TASKS)}")
    task = TASKS[name]
    return task() if seq_len is None else task(seq_len)


__all__ = ["TASKS", "Batch", "Task", "make_task"]
