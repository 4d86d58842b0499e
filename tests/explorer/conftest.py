"""Run folders for the explorer's tests, written the way ``lstmkit train`` writes them but without training: the
config, and the weights of the model the config starts from."""

import json

import pytest


def write_run(folder, *, task="temporal-order", model="lstm", seq_len=12, hidden=6, **spec):
    from lstmkit.lab.checkpoint import save_weights
    from lstmkit.lab.config import TrainConfig
    from lstmkit.lab.model import ModelSpec
    from lstmkit.lab.runs import build_model
    from lstmkit.lab.tasks import make_task

    config = TrainConfig(task=task, seq_len=seq_len, model=ModelSpec(model=model, hidden=hidden, **spec))
    task_ = make_task(task, seq_len)
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({**config.to_dict(), "task_config": task_.config(),
                                                     "world_size": 1}))
    save_weights(folder / "model.safetensors", build_model(config, task_), {})
    return folder


@pytest.fixture
def make_run(tmp_path):
    return lambda name="run", **kw: write_run(tmp_path / name, **kw)
