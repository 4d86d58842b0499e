import json
import math

import pytest
import torch

from lstmkit.lab.demo import run_demo
from lstmkit.lab.gradflow import fit_decay, gate_statistics, gradient_norms
from lstmkit.lab.model import ModelSpec, SequenceModel
from lstmkit.lab.tasks import make_task


def test_fit_decay_recovers_an_exponential():
    fit = fit_decay([3.0 * 0.8**lag for lag in range(50)])
    assert fit["decay_per_step"] == pytest.approx(0.8)
    assert fit["half_life"] == pytest.approx(math.log(2) / -math.log(0.8))
    assert fit_decay([1.0] * 10)["half_life"] is None  # no decay: no half-life
    assert fit_decay([0.0] * 10)["fitted_lags"] == 0


@pytest.mark.parametrize("model", ["rnn", "gru", "lstm"])
def test_step_by_step_states_reproduce_the_forward(model):
    torch.manual_seed(0)
    net = SequenceModel(ModelSpec(model=model, hidden=8, layers=2), 8, 4, t_max=20).double()
    x = torch.randn(3, 20, 8, dtype=torch.float64)
    y, hs, cs = net.step_states(x)
    assert torch.allclose(net(x), y, atol=1e-12)
    assert len(hs) == 20 and len(cs) == (20 if model == "lstm" else 0)


def test_without_recurrent_weights_no_gradient_reaches_back():
    task = make_task("temporal-order", 20)
    torch.manual_seed(0)
    net = SequenceModel(ModelSpec(model="rnn", hidden=8), task.input_size, task.output_size, t_max=20)
    with torch.no_grad():
        net.rnn.weight_hh_l0.zero_()
    norms = gradient_norms(net, task, task.test_set().slice(0, 16))["h"]["norms"]
    assert norms[0] > 0 and all(n == 0 for n in norms[1:])


def test_a_forget_gate_stuck_at_one_carries_the_cell_gradient_undiminished():
    # W_hh = 0 and f = sigmoid(60) = 1 in float64: c_{t-1} reaches the loss only through c_t = c_{t-1} + i g,
    # so dL/dc_t is the same vector at every lag >= 1
    task = make_task("temporal-order", 20)
    torch.manual_seed(0)
    net = SequenceModel(ModelSpec(model="lstm", hidden=8, forget_bias=60.0), task.input_size, task.output_size,
                        t_max=20)
    with torch.no_grad():
        net.rnn.weight_hh_l0.zero_()
        net.rnn.weight_ih_l0[8:16].zero_()  # forget-gate rows: the bias alone decides f
    result = gradient_norms(net, task, task.test_set().slice(0, 16))
    c = result["c"]["norms"]
    assert all(n == pytest.approx(c[1], rel=1e-12) for n in c[1:])
    assert result["c"]["half_life"] is None or result["c"]["half_life"] > 1e6
    assert all(n == 0 for n in result["h"]["norms"][1:])  # h_t feeds nothing but the read-out when W_hh = 0


def test_forget_bias_sets_where_the_forget_gate_starts():
    task = make_task("temporal-order", 30)
    batch = task.test_set().slice(0, 32)
    stats = {}
    for init, bias in (("forget-bias", 3.0), ("torch", 3.0)):
        torch.manual_seed(0)
        net = SequenceModel(ModelSpec(model="lstm", init=init, forget_bias=bias), task.input_size,
                            task.output_size, t_max=30)
        stats[init] = gate_statistics(net, batch)
    assert stats["forget-bias"]["mean"] > 0.9 > 0.6 > stats["torch"]["mean"] > 0.4  # sigmoid(3) = 0.95
    assert sum(stats["torch"]["histogram"]["counts"]) == 32 * 30 * 32
    assert gate_statistics(SequenceModel(ModelSpec(model="rnn"), 8, 4, t_max=30), batch) is None


def test_a_tiny_demo_writes_summary_readme_and_plots(tmp_path, capsys):
    summary = run_demo(tmp_path, seq_len=12, seeds=1, steps=20, workers=1)
    on_disk = json.loads((tmp_path / "summary.json").read_text())
    assert on_disk["task"] == "temporal-order" and set(on_disk["models"]) >= {"rnn", "gru", "lstm"}
    for m in on_disk["models"].values():
        for key in ("params", "success_rate", "metric", "baseline", "grad_half_life"):
            assert key in m
    assert summary["models"]["lstm"]["params"] > summary["models"]["gru"]["params"] > summary["models"]["rnn"]["params"]
    readme = (tmp_path / "README.md").read_text()
    for png in ("learning_curves.png", "gradient_vs_lag.png", "lstm_gates.png", "forget_gates.png",
                "where_memory_lives.png"):
        assert f"]({png})" in readme and (tmp_path / png).stat().st_size > 10_000
    assert "| Parameters" in readme and "| Parameters" in capsys.readouterr().out
    memory = on_disk["memory"]
    assert len(memory["top_units"]) == 5 and memory["units"] == 32 and "## Where the memory lives" in readme
    assert json.loads((tmp_path / "explain.json").read_text())["records"] == ["c"]
