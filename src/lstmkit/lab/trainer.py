"""Train a lab model on a lab task: reproducible, resumable, data parallel.

Reproducibility: the weights are initialised from ``torch.manual_seed(seed)``; every later random draw (each
step's batch, each step's dropout masks) comes from a seed derived from ``(seed, stream, step[, rank])`` with
numpy's SeedSequence. So the run is a pure function of its config (bitwise on CPU for a fixed thread count), and
a resumed run needs only the weights, the optimizer state and the step to continue exactly where it stopped.

Data parallel: under ``torchrun`` (``WORLD_SIZE`` > 1) every process builds the same global batch for a step
and takes its own slice of it; gradients are averaged by ``DistributedDataParallel`` (gloo on CPU). Rank 0
writes the run folder; a resume is read by rank 0 and broadcast, so other machines need no shared disk.

A run folder holds ``config.json``, ``metrics.jsonl`` / ``metrics.csv`` (one row per evaluation),
``checkpoint.safetensors`` (see :mod:`lstmkit.lab.checkpoint`), and at the end ``model.safetensors`` and
``summary.json``.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .._rules import NON_NEGATIVE_INT, POSITIVE_INT, POSITIVE_NUMBER, check
from .checkpoint import CheckpointError, atomic_write_bytes, decode, encode, save_weights
from .model import ModelSpec, SequenceModel, count_parameters
from .tasks import Task, make_task

CHECKPOINT = "checkpoint.safetensors"
_TRAIN_STREAM, _DROPOUT_STREAM = 1, 2
# Fields that may change when a run is resumed: they do not change what any step computes.
_RESUMABLE_CHANGES = ("steps", "checkpoint_every")


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""


@dataclass(frozen=True)
class TrainConfig:
    """Everything that determines a run. ``seq_len`` None means the task's default. ``steps`` is the budget;
    with ``early_stop`` the run ends at the first evaluation that meets the task's "solved" criterion."""

    task: str = "temporal-order"
    seq_len: int | None = None
    model: ModelSpec = field(default_factory=ModelSpec)
    seed: int = 0
    steps: int = 5000
    batch: int = 32
    lr: float = 3e-3
    clip: float = 1.0
    eval_every: int = 100
    checkpoint_every: int = 500
    early_stop: bool = True

    def __post_init__(self):
        for name in ("steps", "batch", "eval_every", "checkpoint_every"):
            check(name, getattr(self, name), POSITIVE_INT)
        check("seed", self.seed, NON_NEGATIVE_INT)
        for name in ("lr", "clip"):
            check(name, getattr(self, name), POSITIVE_NUMBER)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        return cls(**{**d, "model": ModelSpec.from_dict(d["model"])})


def derived_seed(*keys: int) -> int:
    """A 63-bit seed that depends on every key (numpy's SeedSequence mixes them)."""
    return int(np.random.SeedSequence(list(keys)).generate_state(1, np.uint64)[0] >> np.uint64(1))


def step_batch(task: Task, config: TrainConfig, step: int, rank: int = 0, world: int = 1):
    """Step ``step``'s training batch for process ``rank`` of ``world``: a slice of the global batch."""
    generator = torch.Generator().manual_seed(derived_seed(config.seed, _TRAIN_STREAM, step))
    batch = task.train_batch(config.batch, generator)
    share = config.batch // world
    return batch.slice(rank * share, (rank + 1) * share)


@dataclass
class Distributed:
    rank: int = 0
    world: int = 1
    owns_group: bool = False

    @classmethod
    def from_env(cls) -> Distributed:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world == 1:
            return cls()
        import torch.distributed as dist

        owns = not dist.is_initialized()
        if owns:
            dist.init_process_group("gloo")
        return cls(dist.get_rank(), dist.get_world_size(), owns)

    def close(self, ok: bool) -> None:
        """Tear down a process group we started; after a clean run, wait for every rank first. (A process that
        exits with gloo's threads still running aborts: "terminate called without an active exception".)"""
        if not self.owns_group:
            return
        import gc

        import torch.distributed as dist

        gc.collect()  # DistributedDataParallel's reducer holds the group: let it go before the group does
        if ok:
            dist.barrier()
        dist.destroy_process_group()

    def mean(self, value: float) -> float:
        if self.world == 1:
            return value
        import torch.distributed as dist

        t = torch.tensor([value], dtype=torch.float64)
        dist.all_reduce(t)
        return t.item() / self.world

    def broadcast_flag(self, flag: bool) -> bool:
        if self.world == 1:
            return flag
        import torch.distributed as dist

        t = torch.tensor([int(flag)])
        dist.broadcast(t, 0)
        return bool(t.item())

    def broadcast_bytes(self, data: bytes | None) -> bytes | None:
        """Rank 0's ``data`` (or None) on every rank, as raw bytes (nothing is pickled)."""
        if self.world == 1:
            return data
        import torch.distributed as dist

        n = torch.tensor([-1 if data is None else len(data)])
        dist.broadcast(n, 0)
        if n.item() < 0:
            return None
        buf = torch.frombuffer(bytearray(data), dtype=torch.uint8) if self.rank == 0 else \
            torch.empty(n.item(), dtype=torch.uint8)
        dist.broadcast(buf, 0)
        return buf.numpy().tobytes()


def build_model(config: TrainConfig, task: Task) -> SequenceModel:
    torch.manual_seed(config.seed)
    return SequenceModel(config.model, task.input_size, task.output_size, t_max=task.seq_len)


@torch.no_grad()
def evaluate(model: nn.Module, task: Task, test, chunk: int = 512) -> dict:
    """The task's test figures over the whole held-out set, computed in chunks to bound memory."""
    was_training = model.training
    model.eval()
    out = torch.cat([model(test.x[k : k + chunk]) for k in range(0, len(test), chunk)])  # (N, T, O)
    model.train(was_training)
    return task.evaluate(out, test)


def _write_metrics(out_dir: Path, history: list[dict]) -> None:
    atomic_write_bytes(out_dir / "metrics.jsonl", "".join(json.dumps(row) + "\n" for row in history).encode())
    columns = list(dict.fromkeys(k for row in history for k in row))
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    atomic_write_bytes(out_dir / "metrics.csv", text.getvalue().encode())


def _write_json(path: Path, data: dict) -> None:
    atomic_write_bytes(path, (json.dumps(data, indent=2) + "\n").encode())


class _Progress:
    """A tqdm bar on a terminal; one line per evaluation otherwise (logs, CI)."""

    def __init__(self, enabled: bool, total: int, start: int, label: str):
        self.bar, self.enabled, self.label, self.metric = None, enabled, label, ""
        if enabled and sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=start, desc=label, unit="step", dynamic_ncols=True)

    def step(self, loss: float) -> None:
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix_str(f"loss {loss:.4f}{self.metric}", refresh=False)

    def evaluation(self, row: dict, metric_name: str) -> None:
        if self.bar is not None:
            self.metric = f"  held-out {metric_name} {row['metric']:.4f} (step {row['step']})"
            self.bar.set_postfix_str(f"loss {row['train_loss']:.4f}{self.metric}")
        elif self.enabled:
            print(f"{self.label} step {row['step']}: loss {row['train_loss']:.4f}  {metric_name} "
                  f"{row['metric']:.4f}{'  solved' if row['solved'] else ''}", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def train(config: TrainConfig, out_dir: str | Path, *, resume: bool = False, progress: bool = False,
          on_evaluation: Callable[[dict], None] | None = None) -> dict:
    """Train, writing the run folder ``out_dir``; returns the summary (also ``out_dir/summary.json``).

    ``resume``: continue from ``out_dir/checkpoint.safetensors`` if there is one (same config, except
    ``steps`` and ``checkpoint_every`` may change); without it, a folder that already holds a checkpoint is
    refused. Raises :class:`TrainingDiverged` on a NaN/Inf loss, leaving the last checkpoint as it was.
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
    model = build_model(config, task)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    checkpoint_path = out_dir / CHECKPOINT

    start, history, loss_sum, loss_count, elapsed = 0, [], 0.0, 0, 0.0
    data = None
    if dist_.rank == 0:
        if checkpoint_path.exists() and not resume:
            raise ValueError(f"{out_dir} already holds a run ({CHECKPOINT}); pass --resume to continue it or "
                             "choose another --out")
        if resume and checkpoint_path.exists():
            data = checkpoint_path.read_bytes()
    data = dist_.broadcast_bytes(data)
    if data is not None:
        model_state, optim_state, meta = decode(data, str(checkpoint_path))
        _check_resumable(meta["config"], config.to_dict(), checkpoint_path)
        model.load_state_dict(model_state)
        optimizer.load_state_dict(optim_state)
        start, history, elapsed = meta["step"], meta["history"], meta["elapsed"]
        loss_sum, loss_count = meta["loss_sum"], meta["loss_count"]

    if dist_.rank == 0:
        out_dir.mkdir(parents=True, exist_ok=True)
        _write_json(out_dir / "config.json", {**config.to_dict(), "task_config": task.config(),
                                             "world_size": dist_.world})
    wrapped = model
    if dist_.world > 1:
        from torch.nn.parallel import DistributedDataParallel

        wrapped = DistributedDataParallel(model)

    test = task.test_set()
    solved_at = next((row["step"] for row in history if row["solved"]), None)
    last_saved = start if data is not None else None

    def save(step: int) -> None:
        nonlocal last_saved
        if dist_.rank == 0:
            meta = {"step": step, "history": history, "elapsed": elapsed, "loss_sum": loss_sum,
                    "loss_count": loss_count, "config": config.to_dict()}
            atomic_write_bytes(checkpoint_path, encode(model, optimizer, meta))
        last_saved = step

    label = f"{config.task} {config.model.model} seed {config.seed}"
    bar = _Progress(progress and dist_.rank == 0, config.steps, start, label)
    step = start
    finished = config.early_stop and solved_at is not None
    if start == 0 and dist_.rank == 0:  # the curve starts where training starts: the untrained model
        evals = evaluate(model, task, test)
        history.append({"step": 0, "train_loss": None, "test_loss": evals["loss"], "metric": evals["metric"],
                        **{k: v for k, v in evals.items() if k not in ("metric", "loss")}, "solved": False,
                        "elapsed_s": 0.0})
    model.train()
    try:
        while step < config.steps and not finished:
            step += 1
            t0 = time.perf_counter()
            batch = step_batch(task, config, step, dist_.rank, dist_.world)
            torch.manual_seed(derived_seed(config.seed, _DROPOUT_STREAM, step, dist_.rank))
            loss = task.loss(wrapped(batch.x), batch)
            value = dist_.mean(loss.item())
            if not math.isfinite(value):
                where = (f"the last good checkpoint (step {last_saved}) is {checkpoint_path}" if last_saved
                         else "no checkpoint had been written yet")
                raise TrainingDiverged(f"loss became {value} at step {step}; training stopped, {where}")
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), config.clip)
            optimizer.step()
            loss_sum, loss_count = loss_sum + value, loss_count + 1
            bar.step(value)
            if step % config.eval_every == 0 or step == config.steps:
                evals = evaluate(model, task, test)
                solved = dist_.broadcast_flag(task.solved(evals))
                row = {"step": step, "train_loss": loss_sum / loss_count, "test_loss": evals["loss"],
                       "metric": evals["metric"], **{k: v for k, v in evals.items() if k not in ("metric", "loss")},
                       "solved": solved, "elapsed_s": round(elapsed + time.perf_counter() - t0, 3)}
                history.append(row)
                loss_sum, loss_count = 0.0, 0
                if solved and solved_at is None:
                    solved_at = step
                finished = config.early_stop and solved
                if dist_.rank == 0:
                    _write_metrics(out_dir, history)
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
        _write_json(out_dir / "summary.json", summary)
    return summary


def _check_resumable(saved: dict, current: dict, path: Path) -> None:
    differ = [k for k in current if k not in _RESUMABLE_CHANGES and saved.get(k) != current[k]]
    if differ:
        details = ", ".join(f"{k} {saved.get(k)!r} -> {current[k]!r}" for k in differ)
        raise CheckpointError(f"cannot resume {path}: the run's config differs ({details}); only "
                              f"{' and '.join(_RESUMABLE_CHANGES)} may change")


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
    model.load_state_dict(load_weights(run_dir / "model.safetensors"))
    return config, task, model
