"""A run that goes non-finite stops, keeps its last good checkpoint, and leaves strict-JSON metrics."""

import json
import math

import pytest
import torch

import lstmkit.lab.trainer as trainer
from lstmkit.lab.checkpoint import load_checkpoint
from lstmkit.lab.model import ModelSpec
from lstmkit.lab.trainer import TrainConfig, TrainingDiverged, train


def config(**kw):
    base = dict(task="temporal-order", seq_len=10, model=ModelSpec(model="lstm", hidden=4), steps=30, batch=4,
                eval_every=10, checkpoint_every=10, early_stop=False)
    return TrainConfig(**{**base, **kw})


def strict_rows(run_dir):
    def refuse(constant):
        raise ValueError(f"{constant} is not JSON")

    return [json.loads(line, parse_constant=refuse) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_weights_that_an_update_made_infinite_are_never_checkpointed(tmp_path, monkeypatch):
    real_step, calls = torch.optim.Adam.step, []

    def step(self, *a, **kw):  # step 3's update blows a weight up, as --lr 1e30 did
        result = real_step(self, *a, **kw)
        calls.append(1)
        if len(calls) == 3:
            with torch.no_grad():
                self.param_groups[0]["params"][0].fill_(float("inf"))
        return result

    monkeypatch.setattr(torch.optim.Adam, "step", step)
    with pytest.raises(TrainingDiverged, match=r"parameter rnn\.\S+ became NaN or infinite after step 3's update; "
                                               r".*last good checkpoint \(step 2\)"):
        train(config(checkpoint_every=1), tmp_path)
    model_state, optim_state, meta = load_checkpoint(tmp_path / "checkpoint.safetensors")
    assert meta["step"] == 2
    assert all(torch.isfinite(t).all() for t in model_state.values())
    monkeypatch.undo()
    assert train(config(checkpoint_every=1, steps=5), tmp_path, resume=True)["steps"] == 5  # it resumes


def test_a_non_finite_held_out_loss_stops_the_run_and_metrics_stay_strict_json(tmp_path, monkeypatch):
    real_evaluate, calls = trainer.evaluate, []

    def evaluate(*a, **kw):
        evals = real_evaluate(*a, **kw)
        calls.append(1)
        if len(calls) == 2:
            evals["accuracy_extra"] = float("nan")  # an extra figure that cannot be computed is written as null
        if len(calls) == 3:
            evals["loss"] = math.inf
        return evals

    monkeypatch.setattr(trainer, "evaluate", evaluate)
    with pytest.raises(TrainingDiverged, match=r"held-out loss became inf at step 20; .*checkpoint \(step 10\)"):
        train(config(), tmp_path)
    rows = strict_rows(tmp_path)
    assert [r["step"] for r in rows] == [0, 10] and rows[1]["accuracy_extra"] is None
    assert load_checkpoint(tmp_path / "checkpoint.safetensors")[2]["step"] == 10
    assert not (tmp_path / "model.safetensors").exists()
