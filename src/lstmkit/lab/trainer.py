"""Train a lab model on a lab task: reproducible (:mod:`.seeds`), resumable (:mod:`.checkpoint`), data parallel
under ``torchrun`` (:mod:`.distributed`).

:func:`train` is the loop; the run folder it writes is described in :mod:`.runs`. The names other modules define
are re-exported here because ``lstmkit.lab.trainer`` is where existing code (users' scripts, the tests) imports
the trainer's API from (``TrainConfig``, ``build_model``, ``load_run``, ...).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from .checkpoint import CheckpointError, encode, read_bytes, save_weights
from .config import TrainConfig
from .distributed import Distributed
from .files import atomic_write_bytes, remove_stale_temporaries, write_json
from .memory import check_fits
from .metrics import evaluate, evaluation_row, write_metrics
from .model import count_parameters
from .progress import Progress
from .resume import read_resumable
from .runs import CHECKPOINT, build_model, load_run
from .seeds import derived_seed, seed_dropout, step_batch
from .tasks import make_task


class TrainingDiverged(RuntimeError):
    """The training loss, the held-out loss or metric, or the weights became NaN or infinite."""


def train(config: TrainConfig, out_dir: str | Path, *, resume: bool = False, progress: bool = False,
          on_evaluation: Callable[[dict], None] | None = None) -> dict:
    """Train, writing the run folder ``out_dir``; returns the summary (also ``out_dir/summary.json``).

    ``resume``: continue from ``out_dir/checkpoint.safetensors`` if there is one (same config, except
    ``steps`` and ``checkpoint_every`` may change); without it, a folder that already holds a checkpoint is
    refused. Raises :class:`TrainingDiverged` on a NaN/Inf training loss, held-out loss or metric, or weights,
    leaving the last checkpoint as it was: a checkpoint holds only finite weights and optimizer state. Temporaries
    that killed runs left in ``out_dir`` are removed first.
    """
    dist_ = Distributed.from_env()
    ok = False
    try:
        summary = _train(config, Path(out_dir), dist_, resume, progress, on_evaluation)
        ok = True
        return summary
    finally:
        dist_.close(ok)


def _train(config: TrainConfig, out_dir: Path, dist_: Distributed, resume: bool, progress: bool,
           on_evaluation: Callable[[dict], None] | None) -> dict:
    if config.batch % dist_.world:
        raise ValueError(f"`batch` (={config.batch}) must be divisible by the number of processes "
                         f"(={dist_.world}): each process takes an equal slice of the global batch")
    task = make_task(config.task, config.seq_len)
    check_fits(config, task)
    model = build_model(config, task)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    checkpoint_path = out_dir / CHECKPOINT

    start, history, loss_sum, loss_count, elapsed = 0, [], 0.0, 0, 0.0
    data = None
    if dist_.rank == 0:
        if out_dir.exists() and not out_dir.is_dir():
            raise ValueError(f"{out_dir} is a file, expected a run folder")
        if checkpoint_path.exists() and not checkpoint_path.is_file():
            raise CheckpointError(f"{checkpoint_path} is not a file; expected a checkpoint (or nothing)")
        if checkpoint_path.exists() and not resume:
            raise ValueError(f"{out_dir} already holds a run ({CHECKPOINT}); pass --resume to continue it or "
                             "choose another --out")
        remove_stale_temporaries(out_dir)
        if resume and checkpoint_path.exists():
            data = read_bytes(checkpoint_path, "checkpoint")
    data = dist_.broadcast_bytes(data)
    if data is not None:
        resumed = read_resumable(data, str(checkpoint_path), model, optimizer, config.to_dict())
        model.load_state_dict(resumed.model_state)
        optimizer.load_state_dict(resumed.optimizer_state)
        start, history, elapsed = resumed.step, resumed.history, resumed.elapsed
        loss_sum, loss_count = resumed.loss_sum, resumed.loss_count

    if dist_.rank == 0:
        out_dir.mkdir(parents=True, exist_ok=True)
        write_json(out_dir / "config.json", {**config.to_dict(), "task_config": task.config(),
                                             "world_size": dist_.world})
    wrapped = dist_.wrap(model)
    test = task.test_set()
    solved_at = next((row["step"] for row in history if row["solved"]), None)
    last_saved = start if data is not None else None

    def where() -> str:
        return (f"the last good checkpoint (step {last_saved}) is {checkpoint_path}" if last_saved
                else "no checkpoint had been written yet")

    def save(step: int) -> None:
        nonlocal last_saved
        bad = _first_non_finite(model, optimizer)
        if bad is not None:  # such a checkpoint could only be resumed into a NaN loss
            raise TrainingDiverged(f"{bad} became NaN or infinite after step {step}'s update; training stopped, "
                                   f"{where()}")
        if dist_.rank == 0:
            meta = {"step": step, "history": history, "elapsed": elapsed, "loss_sum": loss_sum,
                    "loss_count": loss_count, "config": config.to_dict()}
            atomic_write_bytes(checkpoint_path, encode(model, optimizer, meta))
        last_saved = step

    label = f"{config.task} {config.model.model} seed {config.seed}"
    bar = Progress(progress and dist_.rank == 0, config.steps, start, label)
    step = start
    finished = config.early_stop and solved_at is not None
    if start == 0 and dist_.rank == 0:  # the curve starts where training starts: the untrained model
        history.append(evaluation_row(0, None, evaluate(model, task, test), solved=False, elapsed_s=0.0))
    model.train()
    try:
        while step < config.steps and not finished:
            step += 1
            t0 = time.perf_counter()
            batch = step_batch(task, config, step, dist_.rank, dist_.world)
            seed_dropout(config, step, dist_.rank)
            loss = task.loss(wrapped(batch.x), batch)
            value = dist_.mean(loss.item())
            if not math.isfinite(value):
                raise TrainingDiverged(f"loss became {value} at step {step}; training stopped, {where()}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), config.clip)
            optimizer.step()
            loss_sum, loss_count = loss_sum + value, loss_count + 1
            bar.step(value)
            if step % config.eval_every == 0 or step == config.steps:
                evals = evaluate(model, task, test)
                for figure, value in (("loss", evals["loss"]), (task.metric_name, evals["metric"])):
                    if not math.isfinite(value):  # stop before the row reaches metrics.jsonl or a checkpoint
                        raise TrainingDiverged(f"held-out {figure} became {value} at step {step}; training "
                                               f"stopped, {where()}")
                solved = dist_.broadcast_flag(task.solved(evals))
                row = evaluation_row(step, loss_sum / loss_count, evals, solved,
                                     elapsed_s=round(elapsed + time.perf_counter() - t0, 3))
                history.append(row)
                loss_sum, loss_count = 0.0, 0
                if solved and solved_at is None:
                    solved_at = step
                finished = config.early_stop and solved
                if dist_.rank == 0:
                    write_metrics(out_dir, history)
                bar.evaluation(row, task.metric_name)
                if on_evaluation is not None:
                    on_evaluation(row)
            elapsed += time.perf_counter() - t0
            if step % config.checkpoint_every == 0 or step == config.steps or finished:
                save(step)
    finally:
        bar.close()

    if not history or history[-1]["step"] != step:  # resumed a finished run: nothing new was evaluated
        evals = evaluate(model, task, test)
    else:
        evals = {"metric": history[-1]["metric"]}
    summary = {
        "task": config.task, "model": config.model.model, "model_description": config.model.describe(),
        "seed": config.seed, "steps": step, "metric": evals["metric"], "metric_name": task.metric_name,
        "baseline": task.baseline, "solved": solved_at is not None, "solved_at_step": solved_at,
        "criterion": task.criterion, "world_size": dist_.world, "params": count_parameters(model),
        "seq_len": task.seq_len, "train_seconds": round(elapsed, 3),
    }
    if dist_.rank == 0:
        save_weights(out_dir / "model.safetensors", model, {"config": json.dumps(config.to_dict())})
        write_json(out_dir / "summary.json", summary)
    return summary


def _first_non_finite(model: nn.Module, optimizer: torch.optim.Optimizer) -> str | None:
    """The name of the first parameter (or its optimizer state) holding NaN or Inf; None when all are finite."""
    for name, p in model.named_parameters():
        if not torch.isfinite(p).all():
            return f"parameter {name}"
        for key, t in optimizer.state.get(p, {}).items():
            if isinstance(t, torch.Tensor) and not torch.isfinite(t).all():
                return f"Adam's {key} of {name}"
    return None


__all__ = ["CHECKPOINT", "Distributed", "TrainConfig", "TrainingDiverged", "build_model", "derived_seed", "evaluate",
           "load_run", "step_batch", "train"]
