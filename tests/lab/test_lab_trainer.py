import json

import pytest
import torch

from lstmkit.lab import tasks
from lstmkit.lab.checkpoint import CheckpointError, load_checkpoint, load_weights
from lstmkit.lab.model import ModelSpec
from lstmkit.lab.tasks.temporal_order import TemporalOrder
from lstmkit.lab.trainer import TrainConfig, TrainingDiverged, train

TINY = ModelSpec(model="lstm", hidden=8)


def config(**kw):
    base = dict(task="temporal-order", seq_len=20, model=TINY, steps=30, batch=8, eval_every=10,
                checkpoint_every=10, early_stop=False)
    return TrainConfig(**{**base, **kw})


def weights(run_dir):
    return load_weights(run_dir / "model.safetensors")


def same_weights(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("task", list(tasks.TASKS))
@pytest.mark.parametrize("model", ["rnn", "gru", "lstm"])
def test_every_model_trains_on_every_task_and_writes_the_run_folder(tmp_path, task, model):
    seq_len = {"digits": 64, "permuted-digits": 64, "sunspots": 24, "copy": 3, "reber": 20}.get(task, 24)
    spec = ModelSpec(model=model, hidden=4)
    summary = train(config(task=task, seq_len=seq_len, model=spec, steps=3, eval_every=3), tmp_path)
    for name in ("config.json", "metrics.jsonl", "metrics.csv", "checkpoint.safetensors", "model.safetensors",
                 "summary.json"):
        assert (tmp_path / name).is_file(), name
    on_disk = json.loads((tmp_path / "summary.json").read_text())
    assert on_disk == summary
    for key in ("task", "model", "seed", "steps", "metric", "baseline", "solved", "world_size"):
        assert key in summary
    assert summary["task"] == task and summary["model"] == model and summary["steps"] == 3
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 3]


def test_same_seed_same_weights_bitwise_and_another_seed_differs(tmp_path):
    train(config(seed=3), tmp_path / "a")
    train(config(seed=3), tmp_path / "b")
    train(config(seed=4), tmp_path / "c")
    assert same_weights(weights(tmp_path / "a"), weights(tmp_path / "b"))
    assert not same_weights(weights(tmp_path / "a"), weights(tmp_path / "c"))
    assert (tmp_path / "a" / "metrics.jsonl").read_text().count("\n") == 4


def test_resume_continues_exactly(tmp_path):
    train(config(steps=30), tmp_path / "whole")
    train(config(steps=20), tmp_path / "split")
    train(config(steps=30), tmp_path / "split", resume=True)
    assert same_weights(weights(tmp_path / "whole"), weights(tmp_path / "split"))
    whole = [json.loads(r) for r in (tmp_path / "whole" / "metrics.jsonl").read_text().splitlines()]
    split = [json.loads(r) for r in (tmp_path / "split" / "metrics.jsonl").read_text().splitlines()]
    strip = [{k: v for k, v in row.items() if k != "elapsed_s"} for row in whole]
    assert strip == [{k: v for k, v in row.items() if k != "elapsed_s"} for row in split]


def test_early_stop_when_solved(tmp_path):
    summary = train(TrainConfig(task="recall", seq_len=3, model=ModelSpec(hidden=16), steps=2000, eval_every=50,
                                lr=1e-2), tmp_path)
    assert summary["solved"] and summary["steps"] == summary["solved_at_step"] < 2000
    assert summary["metric"] >= 0.99 > summary["baseline"]


def test_a_folder_holding_a_run_is_not_overwritten_without_resume(tmp_path):
    train(config(steps=10), tmp_path)
    with pytest.raises(ValueError, match="already holds a run.*--resume"):
        train(config(steps=10), tmp_path)


def test_resume_refuses_a_changed_config(tmp_path):
    train(config(steps=10), tmp_path)
    with pytest.raises(CheckpointError, match="lr 0.003 -> 0.01"):
        train(config(steps=20, lr=0.01), tmp_path, resume=True)


def test_truncated_and_corrupt_checkpoints_give_a_clear_error(tmp_path):
    train(config(steps=10), tmp_path)
    path = tmp_path / "checkpoint.safetensors"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(path)
    flipped = bytearray(data)
    flipped[-3] ^= 0xFF  # a byte inside the last tensor
    path.write_bytes(bytes(flipped))
    with pytest.raises(CheckpointError, match="corrupt.*SHA-256"):
        train(config(steps=20), tmp_path, resume=True)
    path.write_bytes(b"")
    with pytest.raises(CheckpointError, match="not a readable checkpoint"):
        load_checkpoint(path)


class _PoisonedTemporalOrder(TemporalOrder):
    """Temporal order whose inputs become NaN from training step 15 on (the trainer draws 8 sequences a step,
    and only training batches come through ``train_batch``)."""

    calls = 0

    def train_batch(self, n, generator):
        type(self).calls += 1
        batch = super().train_batch(n, generator)
        if type(self).calls >= 15:
            batch.x[:] = float("nan")
        return batch


def test_nan_loss_stops_naming_the_step_and_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    _PoisonedTemporalOrder.calls = 0
    monkeypatch.setitem(tasks.TASKS, "temporal-order", _PoisonedTemporalOrder)
    with pytest.raises(TrainingDiverged, match=r"loss became nan at step 15; .*last good checkpoint \(step 10\)"):
        train(config(steps=30), tmp_path)
    _, _, meta = load_checkpoint(tmp_path / "checkpoint.safetensors")
    assert meta["step"] == 10
    assert not (tmp_path / "model.safetensors").exists()


def test_config_rejects_impossible_values():
    with pytest.raises(ValueError, match="`steps` must be a positive integer, got 0"):
        config(steps=0)
    with pytest.raises(ValueError, match=r"`lr` must be a finite number in \(0, 10\]"):
        config(lr=float("nan"))
