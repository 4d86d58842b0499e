import importlib.util
import json
import os
import re
import subprocess
import sys

import pytest

from lstmkit.cli import main

OUT = ["--out", "/nonexistent/never-written"]


@pytest.mark.parametrize(("args", "message"), [
    (["train", "--task", "nope", "--model", "lstm", *OUT], "invalid choice: 'nope'"),
    (["train", "--task", "adding", "--model", "transformer", *OUT], "invalid choice: 'transformer'"),
    (["train", "--task", "adding", "--model", "lstm", "--frobnicate", *OUT], "unrecognized arguments: --frobnicate"),
    (["train", "--task", "adding", "--model", "lstm", "--steps", "0", *OUT], "expected a positive integer, got 0"),
    (["train", "--task", "adding", "--model", "lstm", "--lr", "nan", *OUT], "expected a finite number in (0, 10]"),
    (["train", "--task", "adding", "--model", "lstm", "--seed", "-1", *OUT], "integer in [0, 2**63), got -1"),
    (["train", "--task", "adding", "--model", "rnn", "--forget-bias", "2", *OUT],
     "--forget-bias applies to --model lstm"),
    (["train", "--task", "adding", "--model", "lstm", "--init", "chrono", "--forget-bias", "2", *OUT],
     "--forget-bias sets the bias of --init forget-bias"),
    (["train", "--task", "temporal-order", "--model", "lstm", "--seq-len", "5", *OUT], "at least 10, got 5"),
    (["train", "--task", "digits", "--model", "lstm", "--seq-len", "20", *OUT], "fixed by the 8x8 images at 64"),
    (["train", "--task", "adding", "--model", "lstm"], "the following arguments are required: --out"),
    (["gradflow", "--run", "/nonexistent/run"], "not a finished run"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
    ([], "the following arguments are required: COMMAND"),
])
def test_bad_command_lines_print_one_line_and_exit_2(args, message, capsys):
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and "Traceback" not in err


def test_the_console_entry_point_exits_2_without_a_traceback(cli):
    result = cli("train", "--task", "nope", "--model", "lstm", "--out", "x")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr


def test_resuming_a_corrupt_checkpoint_is_one_line_exit_2(tmp_path, capsys):
    (tmp_path / "checkpoint.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    assert main(["train", "--task", "adding", "--model", "lstm", "--out", str(tmp_path), "--resume"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a readable checkpoint" in err


def test_train_then_gradflow_from_the_command_line(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--task", "adding", "--model", "gru", "--seq-len", "12", "--hidden", "6", "--steps", "20",
                 "--eval-every", "10", "--quiet", "--out", str(run)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["model"] == "gru" and summary["steps"] == 20 and summary["world_size"] == 1
    config = json.loads((run / "config.json").read_text())
    assert config["model"]["hidden"] == 6 and config["seq_len"] == 12
    assert main(["gradflow", "--run", str(run), "--batch", "16"]) == 0
    result = json.loads((run / "gradflow.json").read_text())
    assert len(result["init"]["h"]["norms"]) == 12 and "c" not in result["init"]
    assert result["trained"]["gate"]["gate"] == "z"
    assert (run / "gradflow.png").stat().st_size > 10_000


def test_import_lstmkit_does_not_import_the_lab_dependencies():
    # (tqdm is left out: torch 2.13 imports it itself)
    code = ("import sys, lstmkit, lstmkit.cli; heavy = [m for m in ('matplotlib', 'sklearn', 'safetensors', "
            "'lstmkit.lab') if m in sys.modules]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr


def test_the_command_line_offers_exactly_the_lab_tasks_and_models():
    from lstmkit.cli.types import MODEL_NAMES, TASK_NAMES
    from lstmkit.lab.model import MODELS
    from lstmkit.lab.tasks import TASKS

    assert tuple(TASKS) == TASK_NAMES and MODELS == MODEL_NAMES


@pytest.mark.parametrize(("option", "value", "field"), [("--steps", "0", "steps"), ("--seed", "-1", "seed"),
                                                        ("--lr", "inf", "lr"), ("--lr", "11", "lr")])
def test_an_option_and_the_config_field_it_sets_expect_the_same_thing(option, value, field, capsys):
    from lstmkit.lab.trainer import TrainConfig

    assert main(["train", "--task", "adding", "--model", "lstm", option, value, *OUT]) == 2
    cli_expected = capsys.readouterr().err.split("expected ")[1].split(", got")[0]
    with pytest.raises(ValueError, match=re.escape(f"`{field}` must be {cli_expected}, got")):
        TrainConfig(**{field: int(value) if field != "lr" else float(value)})


@pytest.mark.parametrize("args", [["train", "--task", "adding", "--model", "lstm"], ["gradflow", "--run", "."],
                                  ["explain", "--run", "."], ["sweep"], ["demo"]], ids=lambda args: args[0])
def test_a_lab_command_without_the_lab_extra_names_the_package_and_exits_2(args, monkeypatch, capsys, tmp_path):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a, **kw: None if name == "sklearn" else find_spec(name, *a, **kw))
    out = tmp_path / "out"
    assert main([*args, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "scikit-learn is not installed" in err and 'pip install "lstmkit[lab]"' in err
    assert not out.exists()  # the check comes before any work


def test_demo_without_matplotlib_is_one_line_exit_2_not_a_worker_traceback(tmp_path, lab_env):
    hide = tmp_path / "hide"
    hide.mkdir()
    (hide / "sitecustomize.py").write_text("import sys\nsys.modules['matplotlib'] = None  # as if not installed\n")
    env = {**lab_env, "PYTHONPATH": os.pathsep.join([str(hide), lab_env["PYTHONPATH"]])}
    result = subprocess.run([sys.executable, "-m", "lstmkit", "demo", "--out", str(tmp_path / "demo"), "--seeds", "1",
                             "--steps", "2", "--seq-len", "10"], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr[-2000:]
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert "matplotlib is not installed" in result.stderr and 'pip install "lstmkit[lab]"' in result.stderr
    assert not (tmp_path / "demo").exists()
