"""A checkpoint is resumed from only when every byte is the one written and its contents fit the run."""

import json

import pytest
import torch

from lstmkit.cli import main
from lstmkit.lab.checkpoint import CheckpointError, encode
from lstmkit.lab.model import ModelSpec
from lstmkit.lab.resume import read_resumable
from lstmkit.lab.runs import build_model
from lstmkit.lab.tasks import make_task
from lstmkit.lab.trainer import TrainConfig, train

SMALL = TrainConfig(task="temporal-order", seq_len=10, model=ModelSpec(model="rnn", hidden=1), steps=2, batch=2,
                    eval_every=1, checkpoint_every=2, early_stop=False)


def fresh(config=SMALL):
    model = build_model(config, make_task(config.task, config.seq_len))
    return model, torch.optim.Adam(model.parameters(), lr=config.lr)


def read(data, config=SMALL, into=None):
    return read_resumable(data, "ckpt", *(into or fresh(config)), config.to_dict())


def same(a, b) -> bool:
    def equal(x, y):
        if isinstance(x, torch.Tensor):
            return isinstance(y, torch.Tensor) and x.dtype == y.dtype and torch.equal(x, y)
        if isinstance(x, dict):
            return isinstance(y, dict) and x.keys() == y.keys() and all(equal(x[k], y[k]) for k in x)
        if isinstance(x, list):
            return isinstance(y, list) and len(x) == len(y) and all(map(equal, x, y))
        return type(x) is type(y) and x == y

    return equal(vars(a), vars(b))


@pytest.fixture(scope="module")
def small_checkpoint(tmp_path_factory) -> bytes:
    out = tmp_path_factory.mktemp("run")
    train(SMALL, out)
    return (out / "checkpoint.safetensors").read_bytes()


def test_flipping_any_byte_of_a_checkpoint_is_caught_or_changes_nothing(small_checkpoint):
    into = fresh()  # read_resumable only reads the model and optimizer it checks against
    original = read(small_checkpoint, into=into)
    accepted = []
    for i in range(len(small_checkpoint)):
        flipped = bytearray(small_checkpoint)
        flipped[i] ^= 1 << (i % 8)  # one bit of every byte, every bit position in turn
        try:
            result = read(bytes(flipped), into=into)
        except CheckpointError as err:
            assert "\n" not in str(err) and "ckpt" in str(err)
            continue
        if not same(result, original):
            accepted.append(i)
    assert not accepted, f"{len(accepted)} flips accepted with changed contents, first at byte {accepted[0]}"


def _edited(meta_edit=None, config=SMALL, **overrides) -> bytes:
    """A checkpoint with a valid checksum whose trainer state was edited by ``meta_edit``."""
    model, optimizer = fresh(config)
    task = make_task(config.task, config.seq_len)
    model(torch.zeros(1, 3, task.input_size)).sum().backward()  # one step, so Adam has state
    optimizer.step()
    meta = {"step": 2, "history": [{"step": 0, "solved": False}, {"step": 1, "solved": False}], "elapsed": 0.1,
            "loss_sum": 0.5, "loss_count": 1, "config": config.to_dict(), **overrides}
    if meta_edit is not None:
        meta_edit(meta)
    return encode(model, optimizer, meta)


@pytest.mark.parametrize(("edit", "message"), [
    (lambda m: m.pop("history"), "has no 'history'"),
    (lambda m: m.pop("config"), "has no 'config'"),
    (lambda m: m.update(step="abc"), "'step' must be a non-negative integer, got 'abc'"),
    (lambda m: m.update(config=[]), "'config' must be a dict, got list"),
    (lambda m: m.update(history={}), "'history' must be a list"),
    (lambda m: m["history"].append({"step": 2, "solved": "yes"}), "history row 2 must be a dict"),
    (lambda m: m["history"].append({"step": 9, "solved": True}), "history row 2 is of step 9"),
    (lambda m: m["config"].update(lr=0.5), "config differs"),
])
def test_edited_but_checksummed_trainer_state_is_one_line_naming_the_file(edit, message):
    with pytest.raises(CheckpointError, match="ckpt") as err:
        read(_edited(edit))
    assert message in str(err.value) and "\n" not in str(err.value)


def test_checkpoint_fields_missing_or_of_the_wrong_type_are_named(monkeypatch):
    import lstmkit.lab.checkpoint as checkpoint

    real_dumps = json.dumps

    def dumps(value, **kw):  # optim_scalars written as a list: the digest is computed over what is stored
        return real_dumps([] if value == {} else value, **kw)

    monkeypatch.setattr(checkpoint.json, "dumps", dumps)
    data = _edited()
    monkeypatch.undo()
    with pytest.raises(CheckpointError, match="field 'optim_scalars' must be a JSON dict, got list"):
        read(data)


def test_a_valid_checkpoint_of_another_model_shape_names_the_file_and_the_tensor():
    bigger = TrainConfig(**{**SMALL.__dict__, "model": ModelSpec(model="rnn", hidden=3)})
    data = _edited(config=bigger)
    with pytest.raises(CheckpointError, match=r"^ckpt holds another model's weights: rnn\..* is \(3, 8\)"):
        read_resumable(data, "ckpt", *fresh(), bigger.to_dict())


def test_resuming_from_another_models_checkpoint_on_the_command_line_is_one_line_exit_2(tmp_path, capsys):
    args = ["train", "--task", "temporal-order", "--model", "rnn", "--seq-len", "10", "--steps", "2", "--batch",
            "2", "--quiet", "--out", str(tmp_path)]
    assert main([*args, "--hidden", "3"]) == 0
    capsys.readouterr()
    assert main([*args, "--hidden", "2", "--resume"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(tmp_path) in err and "hidden" in err and "Traceback" not in err


def test_gradflow_on_weights_of_another_shape_is_one_line_naming_the_file(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--task", "temporal-order", "--model", "rnn", "--seq-len", "10", "--hidden", "2",
                 "--steps", "2", "--batch", "2", "--quiet", "--out", str(run)]) == 0
    config = json.loads((run / "config.json").read_text())
    config["model"]["hidden"] = 3
    (run / "config.json").write_text(json.dumps(config))
    capsys.readouterr()
    assert main(["gradflow", "--run", str(run)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "model.safetensors does not hold the weights" in err and "size mismatch" in err
