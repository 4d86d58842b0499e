"""Where a run's randomness comes from, so that a run is a pure function of its config.

The weights are initialised from ``torch.manual_seed(seed)`` (:func:`lstmkit.lab.runs.build_model`); every later
random draw (each step's batch, each step's dropout masks) comes from a seed derived from ``(seed, stream, step[,
rank])`` with numpy's SeedSequence. So a run is bitwise reproducible on CPU for a fixed thread count, and a resumed
run needs only the weights, the optimizer state and the step to continue exactly where it stopped.
"""

from __future__ import annotations

import numpy as np
import torch

from .config import TrainConfig
from .tasks import Batch, Task

TRAIN_STREAM, DROPOUT_STREAM = 1, 2


def derived_seed(*keys: int) -> int:
    """A 63-bit seed that depends on every key (numpy's SeedSequence mixes them)."""
    return int(np.random.SeedSequence(list(keys)).generate_state(1, np.uint64)[0] >> np.uint64(1))


def step_batch(task: Task, config: TrainConfig, step: int, rank: int = 0, world: int = 1) -> Batch:
    """Step ``step``'s training batch for process ``rank`` of ``world``: a slice of the global batch, which every
    process draws alike from ``(config.seed, step)``."""
    generator = torch.Generator().manual_seed(derived_seed(config.seed, TRAIN_STREAM, step))
    batch = task.train_batch(config.batch, generator)
    share = config.batch // world
    return batch.slice(rank * share, (rank + 1) * share)


def seed_dropout(config: TrainConfig, step: int, rank: int = 0) -> None:
    """Seed torch's global CPU generator for step ``step``'s dropout masks on process ``rank``. The CPU generator
    only: ``torch.manual_seed`` also queues seeds for CUDA, XPU and MTIA, each recording a formatted stack while
    those are not initialised, 1.4 ms per step (a tenth of a step of the demo's LSTM, by cProfile)."""
    torch.default_generator.manual_seed(derived_seed(config.seed, DROPOUT_STREAM, step, rank))
