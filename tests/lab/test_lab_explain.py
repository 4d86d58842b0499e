"""`lstmkit explain`: the tasks' informative steps and counterfactuals, a hand-set LSTM whose memory lives in one
unit (explain must find it, and patching it must flip every answer), and the command line's errors."""

import json

import pytest
import torch

from lstmkit.cli import main
from lstmkit.lab.explain import NoInformativeSteps, explain, format_table
from lstmkit.lab.model import ModelSpec, SequenceModel
from lstmkit.lab.tasks import make_task
from lstmkit.lab.tasks.temporal_order import _X


def one_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_temporal_order_informative_steps_are_the_x_y_positions():
    task = make_task("temporal-order", 20)
    batch = task.sample(64, torch.Generator().manual_seed(1))
    info = task.informative(batch)
    symbols = batch.x.argmax(-1)
    assert info.steps.shape == (64, 2) and (info.readout == 19).all()
    assert (symbols.gather(1, info.steps) >= _X).all()
    assert ((info.steps[:, 0] >= 2) & (info.steps[:, 0] <= 4) & (info.steps[:, 1] >= 10)
            & (info.steps[:, 1] <= 12)).all()
    span = info.span(20)
    assert (span.sum(1) == 19 - info.steps[:, 0]).all() and not span[:, 19].any()


@pytest.mark.parametrize("name, length, k", [("temporal-order", 20, 2), ("adding", 12, 2), ("adding-1997", 30, 2),
                                            ("recall", 6, 1)])
def test_counterfactual_changes_only_the_informative_inputs_and_the_answer(name, length, k):
    task = make_task(name, length)
    batch = task.sample(256, torch.Generator().manual_seed(2))
    other = task.counterfactual(batch, torch.Generator().manual_seed(3))
    info = task.informative(batch)
    assert info.steps.shape == (256, k)
    assert torch.equal(task.informative(other).steps, info.steps)           # the same steps
    changed = (other.x != batch.x).any(-1)                                   # (B, T)
    at_steps = torch.zeros_like(changed).scatter(1, info.steps, True)
    assert not (changed & ~at_steps).any()                                   # nothing else changed
    if batch.y.is_floating_point():                                          # the targets follow the new values
        resampled = task.sample(256, torch.Generator().manual_seed(2))
        assert torch.equal(resampled.y, batch.y)
        assert (other.y != batch.y).float().mean() > 0.9
    else:
        assert (other.y != batch.y).all()


def test_adding_targets_of_the_counterfactual_are_its_marked_sums():
    task = make_task("adding", 10)
    batch = task.sample(32, torch.Generator().manual_seed(4))
    other = task.counterfactual(batch, torch.Generator().manual_seed(5))
    torch.testing.assert_close(other.y, (other.x[..., 0] * other.x[..., 1]).sum(1))


@pytest.mark.parametrize("name", ["copy", "reber", "digits", "sunspots"])
def test_tasks_without_informative_steps_say_so(name):
    task = make_task(name)
    assert task.informative(task.test_set().slice(0, 2)) is None


def latching_lstm(unit: int, lag: int, hidden: int = 4) -> SequenceModel:
    """An LSTM on recall whose unit ``unit`` latches the key at step 0 and holds it (every other unit stays at
    0): i opens only for a key, f stays at 1, g writes key k as a distinct level, o is 1. The read-out picks the
    key whose level is nearest the unit's h (logit_k = a_k h - a_k^2 / 2)."""
    model = SequenceModel(ModelSpec(hidden=hidden), 17, 8, t_max=lag + 1)
    levels = torch.linspace(-0.875, 0.875, 8)                               # g for key k
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
        w, b = model.rnn.weight_ih_l0, model.rnn.bias_ih_l0                  # (4H, 17), (4H,): rows i, f, g, o
        H = hidden
        w[unit, :8] = 60.0                                                   # i: open on a key
        b[unit] = -30.0
        b[H + unit] = 30.0                                                   # f = 1
        w[2 * H + unit, :8] = torch.atanh(levels)                            # g = level of the key
        b[3 * H + unit] = 30.0                                               # o = 1
        a = torch.tanh(levels)                                               # h at the read-out, per key
        model.head.weight[:, unit] = a
        model.head.bias.copy_(-a**2 / 2)
    return model


def test_explain_finds_the_one_unit_that_holds_the_key_and_patching_it_flips_every_answer():
    task = make_task("recall", 8)
    model = latching_lstm(unit=2, lag=8)
    result = explain(model, task, sequences=64)
    assert result["clean"]["metric"] == 1.0
    top = result["units"][0]
    assert top["label"] == "2" and top["effect"]["c"] > 0.7
    assert all(u["effect"]["c"] == 0 for u in result["units"][1:])          # the other units hold nothing
    assert top["effect"]["g"] > 0.7 and top["effect"]["i"] > 0.7            # no key written without i and g
    assert result["k90"] == 1 and result["k90_patching"] == 1
    assert result["patching"]["rows"] == 64 and result["patching"]["flip_rate"] == [1.0] * 4
    assert result["top_k"][0]["metric"] == pytest.approx(1 - top["effect"]["c"])
    assert "k90 = 1" in format_table(result)


def test_explain_refuses_a_task_without_informative_steps():
    task = make_task("reber")
    model = SequenceModel(ModelSpec(hidden=2), task.input_size, task.output_size, t_max=task.seq_len)
    with pytest.raises(NoInformativeSteps, match="task 'reber' does not say where its informative inputs are"):
        explain(model, task, sequences=4)


def test_explain_on_a_gru_ablates_its_state_h_and_gates(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--task", "recall", "--model", "gru", "--seq-len", "5", "--hidden", "3", "--batch", "4",
                 "--steps", "2", "--quiet", "--out", str(run)]) == 0
    capsys.readouterr()
    assert main(["explain", "--run", str(run), "--sequences", "16"]) == 0
    result = json.loads((run / "explain" / "explain.json").read_text())
    assert result["state"] == "h" and result["records"] == ["h", "r", "z", "n"]
    assert len(result["top_k"]) == 3 and len(result["patching"]["flip_rate"]) == 3
    for png in ("unit_effects.png", "top_k.png", "top_units_state.png"):
        assert (run / "explain" / png).stat().st_size > 0
    assert "rank  unit" in capsys.readouterr().out


def test_explain_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["explain", "--run", str(tmp_path / "nowhere")]) == 2
    assert "is not a run folder: it has no config.json" in one_line(capsys)
    run = tmp_path / "reber"
    assert main(["train", "--task", "reber", "--model", "lstm", "--hidden", "2", "--batch", "2", "--steps", "2",
                 "--quiet", "--out", str(run)]) == 0
    capsys.readouterr()
    assert main(["explain", "--run", str(run)]) == 2
    assert "task 'reber' does not say where its informative inputs are" in one_line(capsys)
    (run / "model.safetensors").unlink()
    assert main(["explain", "--run", str(run)]) == 2
    assert "is not a finished run: it has no model.safetensors" in one_line(capsys)
    assert main(["explain", "--run", str(run), "--sequences", "0"]) == 2
    capsys.readouterr()
