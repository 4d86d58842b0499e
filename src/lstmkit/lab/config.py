"""``TrainConfig``: everything that determines a training run, as stored in its folder's ``config.json``."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

from .._rules import LEARNING_RATE, POSITIVE_INT, POSITIVE_NUMBER, SEED, check
from .checkpoint import CheckpointError
from .model import ModelSpec

# Fields that may change when a run is resumed: they do not change what any step computes.
RESUMABLE_CHANGES = ("steps", "checkpoint_every")


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
        check("seed", self.seed, SEED)
        check("lr", self.lr, LEARNING_RATE)
        check("clip", self.clip, POSITIVE_NUMBER)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        return cls(**{**d, "model": ModelSpec.from_dict(d["model"])})


def check_resumable(saved: dict, current: dict, path: Path | str) -> None:
    """Raise unless a checkpoint written under config ``saved`` may continue under ``current`` (both as dicts)."""
    differ = [k for k in current if k not in RESUMABLE_CHANGES and saved.get(k) != current[k]]
    if differ:
        details = ", ".join(f"{k} {saved.get(k)!r} -> {current[k]!r}" for k in differ)
        raise CheckpointError(f"cannot resume {path}: the run's config differs ({details}); only "
                              f"{' and '.join(RESUMABLE_CHANGES)} may change")
