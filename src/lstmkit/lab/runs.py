"""A run's model: freshly initialised from its config, or trained, read back from its run folder.

A run folder holds ``config.json``, ``metrics.jsonl`` / ``metrics.csv`` (one row per evaluation, see
:mod:`lstmkit.lab.metrics`), ``checkpoint.safetensors`` (see :mod:`lstmkit.lab.checkpoint`), and once the run has
finished ``model.safetensors`` and ``summary.json``.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from .checkpoint import CheckpointError
from .config import TrainConfig
from .model import SequenceModel
from .tasks import Task, make_task

CHECKPOINT = "checkpoint.safetensors"


def build_model(config: TrainConfig, task: Task) -> SequenceModel:
    """The model ``config`` starts from: its initial weights depend on ``config.seed`` only."""
    torch.manual_seed(config.seed)
    return SequenceModel(config.model, task.input_size, task.output_size, t_max=task.seq_len)


def load_run(run_dir: str | Path) -> tuple[TrainConfig, Task, SequenceModel]:
    """A finished run's config, task and trained model (from ``config.json`` and ``model.safetensors``)."""
    from .checkpoint import load_weights

    run_dir = Path(run_dir)
    try:
        raw = json.loads((run_dir / "config.json").read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{run_dir} is not a finished run: cannot read config.json ({err})") from None
    config = TrainConfig.from_dict({k: v for k, v in raw.items() if k not in ("task_config", "world_size")})
    task = make_task(config.task, config.seq_len)
    model = build_model(config, task)
    weights = run_dir / "model.safetensors"
    try:
        model.load_state_dict(load_weights(weights))
    except RuntimeError as err:  # torch's "size mismatch for ..." / "Missing key(s) ...": several lines
        first = next((line.strip() for line in str(err).splitlines() if line.strip().startswith(("size", "Missing",
                      "Unexpected"))), "its tensors do not fit")
        raise CheckpointError(f"{weights} does not hold the weights of the model in {run_dir / 'config.json'}: "
                              f"{first}") from None
    return config, task, model
