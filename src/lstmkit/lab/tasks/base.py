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


@dataclass
class Informative:
    """Where each sequence of a batch needs memory: ``steps`` (B, K) the steps of its informative inputs (the
    symbols or values the answer depends on), ``readout`` (B,) the step whose output is the answer."""

    steps: Tensor
    readout: Tensor

    def span(self, T: int) -> Tensor:
        """(B, T) bool: the steps between the first informative input (included) and the read-out (excluded),
        over which the model must carry what it read."""
        t = torch.arange(T).unsqueeze(0)  # (1, T)
        return (t >= self.steps.min(dim=1).values.unsqueeze(1)) & (t < self.readout.unsqueeze(1))


class Task:
    """Base class. A subclass declares what it is in class attributes and implements ``sample`` (or
    ``train_batch`` and ``test_set`` when it draws from a fixed data set), ``loss`` and ``evaluate``.

    The declarations: ``baseline``, the metric a memoryless predictor reaches (each task documents which
    predictor); ``criterion``, the "solved" criterion in words, for logs and READMEs; ``solved_when = (figure, op,
    bar)``, the same criterion as a test on one of :meth:`evaluate`'s figures (``op`` is ">=" or "<");
    ``min_seq_len``, the shortest length the task can build; ``extra_steps``, steps a sequence has beyond its
    length parameter (copy's read-back, recall's query). A task whose baseline or bar depends on its data sets
    them on the instance instead.

    A task whose answer depends on a few inputs at known steps (temporal order, adding, recall) also says where
    they are (:meth:`informative`), how to make the same sequences with other informative symbols
    (:meth:`counterfactual`) and which answers are right (:meth:`correct`): ``lstmkit explain`` needs the three.
    """

    name: str = ""
    input_size: int = 0
    output_size: int = 0
    metric_name: str = ""
    higher_is_better: bool = True
    default_seq_len: int | None = None
    test_size: int = 1024
    min_seq_len: int = 1
    extra_steps: int = 0
    baseline: float          # a class attribute, or a property where it depends on the length (copy)
    criterion: str
    solved_when: tuple[str, str, float] = ("metric", ">=", 0.99)

    def __init__(self, seq_len: int | None = None):
        """``seq_len`` is the task's length parameter (the lag, the delay, T); None means ``default_seq_len``."""
        self._T = check_seq_len(self.name, self.default_seq_len if seq_len is None else seq_len, self.min_seq_len)

    @property
    def seq_len(self) -> int:
        """Steps per sequence the model reads (the longest, for variable-length tasks)."""
        return self._T + self.extra_steps

    def solved(self, evals: dict) -> bool:
        """Whether :meth:`evaluate`'s figures meet ``solved_when``."""
        figure, op, bar = self.solved_when
        assert op in (">=", "<"), f"{type(self).__name__}.solved_when has op {op!r}"
        return evals[figure] >= bar if op == ">=" else evals[figure] < bar

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

    def informative(self, batch: Batch) -> Informative | None:
        """Per sequence of ``batch``, the steps of the inputs the answer depends on and the read-out step; None
        for a task whose answer has no such few inputs (the default)."""
        return None

    def counterfactual(self, batch: Batch, generator: torch.Generator) -> Batch:
        """``batch`` with other informative symbols (values) at the same steps, every other input unchanged, and
        the targets that go with them. Only tasks with :meth:`informative` steps implement it."""
        raise NotImplementedError(f"task {self.name!r} has no informative steps")

    def correct(self, out: Tensor, batch: Batch) -> Tensor:
        """(B,) bool: whether the answer to each sequence is right (the class, or within the task's tolerance).
        Only tasks with :meth:`informative` steps implement it."""
        raise NotImplementedError(f"task {self.name!r} has no informative steps")

    def config(self) -> dict:
        """The task's parameters, as written to a run's config.json."""
        if self.extra_steps:
            return {"seq_len": self._T, "steps_per_sequence": self.seq_len}
        return {"seq_len": self.seq_len}

    def better(self, a: float, b: float) -> bool:
        """True when metric ``a`` beats ``b``."""
        return a > b if self.higher_is_better else a < b


def last_step_accuracy(out: Tensor, y: Tensor) -> float:
    return (out[:, -1].argmax(-1) == y).float().mean().item()  # out (B, T, C), y (B,)


def check_seq_len(task: str, seq_len: int | None, minimum: int) -> int:
    if isinstance(seq_len, bool) or not isinstance(seq_len, int):   # (None: a task without a default length)
        raise TypeError(f"`seq_len` of task {task!r} must be an int, got {type(seq_len).__name__} ({seq_len!r})")
    if seq_len < minimum:
        raise ValueError(f"`seq_len` of task {task!r} must be at least {minimum}, got {seq_len}")
    return seq_len
