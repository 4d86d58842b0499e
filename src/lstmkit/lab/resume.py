"""What a checkpoint must hold to continue a run, checked before any of it is used.

:mod:`.checkpoint` reads the file and vouches that its bytes are the ones written (a SHA-256 over all of them).
Here the contents are checked against the run that wants them: the counters have their types, the history rows
are rows, the config is this run's (only ``steps`` and ``checkpoint_every`` may change), every tensor has the
shape of this model's parameter, and the optimizer's settings and state fit this optimizer. Anything else is a
one-line :class:`CheckpointError` naming the file and the mismatch -- never a KeyError or a size-mismatch
traceback from deep inside torch.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import torch

from .checkpoint import CheckpointError, decode
from .config import check_resumable


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


# meta key: (what it must be, test)
_COUNTERS = {
    "step": ("a non-negative integer", lambda v: _is_int(v) and v >= 0),
    "elapsed": ("a non-negative finite number", lambda v: _is_number(v) and v >= 0),
    "loss_sum": ("a finite number", _is_number),
    "loss_count": ("a non-negative integer", lambda v: _is_int(v) and v >= 0),
}
_ADAM_STATE = {"step", "exp_avg", "exp_avg_sq"}


@dataclass
class Resumed:
    """A checked checkpoint: the states to load and the trainer's counters."""

    model_state: dict
    optimizer_state: dict
    step: int
    history: list[dict]
    elapsed: float
    loss_sum: float
    loss_count: int


def read_resumable(data: bytes, source: str, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                   config: dict) -> Resumed:
    """Decode a checkpoint and check it can continue the run of ``config`` with ``model`` and ``optimizer``
    (which are not changed: load ``model_state`` and ``optimizer_state`` into them after)."""
    model_state, optimizer_state, meta = decode(data, source)
    _check_meta(meta, source)
    check_resumable(meta["config"], config, source)
    _check_model(model_state, model, source)
    _check_optimizer(optimizer_state, model, optimizer, source)
    return Resumed(model_state, optimizer_state, meta["step"], meta["history"], meta["elapsed"], meta["loss_sum"],
                   meta["loss_count"])


def _check_meta(meta: dict, source: str) -> None:
    for key, (expected, _) in {**_COUNTERS, "history": ("a list", None), "config": ("a dict", None)}.items():
        if key not in meta:
            raise CheckpointError(f"{source}: the trainer's state has no {key!r}; expected {expected}")
    for key, (expected, holds) in _COUNTERS.items():
        if not holds(meta[key]):
            raise CheckpointError(f"{source}: {key!r} must be {expected}, got {meta[key]!r}")
    if not isinstance(meta["config"], dict):
        raise CheckpointError(f"{source}: 'config' must be a dict, got {type(meta['config']).__name__}")
    history = meta["history"]
    if not isinstance(history, list):
        raise CheckpointError(f"{source}: 'history' must be a list of rows, got {type(history).__name__}")
    previous = -1
    for i, row in enumerate(history):
        if not (isinstance(row, dict) and _is_int(row.get("step")) and isinstance(row.get("solved"), bool)):
            raise CheckpointError(f"{source}: history row {i} must be a dict with an integer 'step' and a true/false "
                                  f"'solved', got {json.dumps(row)[:80]}")
        if not previous < row["step"] <= meta["step"]:
            raise CheckpointError(f"{source}: history row {i} is of step {row['step']}, expected a step after "
                                  f"{previous} and at most the checkpoint's step {meta['step']}")
        previous = row["step"]


def _check_model(state: dict, model: torch.nn.Module, source: str) -> None:
    own = model.state_dict()
    missing, extra = sorted(own.keys() - state.keys()), sorted(state.keys() - own.keys())
    if missing or extra:
        what = f"lacks {missing[0]!r}" if missing else f"has {extra[0]!r}, which this model does not"
        raise CheckpointError(f"{source} holds another model's weights: it {what}")
    for name, tensor in own.items():
        theirs = state[name]
        if theirs.shape != tensor.shape or theirs.dtype != tensor.dtype:
            raise CheckpointError(f"{source} holds another model's weights: {name} is {tuple(theirs.shape)} "
                                  f"{theirs.dtype}, this model's is {tuple(tensor.shape)} {tensor.dtype}")
        if theirs.is_floating_point() and not torch.isfinite(theirs).all():
            raise CheckpointError(f"{source}: {name} holds NaN or infinite values; delete it to start over")


def _check_optimizer(state: dict, model: torch.nn.Module, optimizer: torch.optim.Optimizer, source: str) -> None:
    own_groups = json.loads(json.dumps(optimizer.state_dict()["param_groups"]))  # tuples as lists, like the file
    if state["param_groups"] != own_groups:
        raise CheckpointError(f"{source}: the optimizer's settings differ from this run's "
                              f"({_first_difference(state['param_groups'], own_groups)})")
    params = list(model.parameters())
    for index, values in state["state"].items():
        if not 0 <= index < len(params):
            raise CheckpointError(f"{source}: optimizer state for parameter {index}, but the model has "
                                  f"{len(params)} parameters")
        if set(values) != _ADAM_STATE:
            raise CheckpointError(f"{source}: optimizer state of parameter {index} holds {sorted(values)}, expected "
                                  f"{sorted(_ADAM_STATE)}")
        for key in ("exp_avg", "exp_avg_sq"):
            t = values[key]
            if not isinstance(t, torch.Tensor) or t.shape != params[index].shape or t.dtype != params[index].dtype:
                raise CheckpointError(f"{source}: optimizer {key} of parameter {index} does not match the "
                                      f"parameter's shape {tuple(params[index].shape)}")
            if not torch.isfinite(t).all():
                raise CheckpointError(f"{source}: optimizer {key} of parameter {index} holds NaN or infinite "
                                      "values; delete it to start over")
        step = values["step"]
        if not (isinstance(step, torch.Tensor) and step.numel() == 1 and step.is_floating_point()
                and torch.isfinite(step).all() and step.item() >= 0):
            raise CheckpointError(f"{source}: optimizer step of parameter {index} must be a one-element "
                                  "non-negative float tensor")


def _first_difference(saved: list, own: list) -> str:
    if len(saved) != len(own) or not all(isinstance(g, dict) for g in saved):
        return f"{len(saved)} parameter groups -> {len(own)}"
    for a, b in zip(saved, own, strict=True):
        for key in sorted(a.keys() | b.keys()):
            if a.get(key) != b.get(key):
                return f"{key} {a.get(key)!r} -> {b.get(key)!r}"
    return "?"
