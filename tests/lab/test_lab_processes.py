"""The trainer as separate processes: killed with SIGKILL and resumed, and data parallel under torchrun."""

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from lstmkit.lab.checkpoint import load_checkpoint, load_weights

TRAIN = ["train", "--task", "temporal-order", "--model", "lstm", "--seq-len", "20", "--hidden", "8", "--batch", "8",
         "--eval-every", "50", "--no-early-stop", "--quiet"]


def lstmkit_cmd(*args):
    return [sys.executable, "-m", "lstmkit", *map(str, args)]


def test_sigkill_after_a_checkpoint_then_resume_gives_the_uninterrupted_weights(tmp_path, lab_env):
    steps, every = 800, 50
    whole = subprocess.run(lstmkit_cmd(*TRAIN, "--steps", steps, "--checkpoint-every", every, "--out",
                                       tmp_path / "whole"), env=lab_env, capture_output=True, text=True, timeout=120)
    assert whole.returncode == 0, whole.stderr

    run = tmp_path / "killed"
    proc = subprocess.Popen(lstmkit_cmd(*TRAIN, "--steps", steps, "--checkpoint-every", every, "--out", run),
                            env=lab_env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoint = run / "checkpoint.safetensors"
    deadline = time.monotonic() + 60
    while not checkpoint.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run ended before it could be killed"
    step = load_checkpoint(checkpoint)[2]["step"]  # whatever the kill left is a whole, readable checkpoint
    assert 0 < step < steps and not (run / "model.safetensors").exists()

    resumed = subprocess.run(lstmkit_cmd(*TRAIN, "--steps", steps, "--checkpoint-every", every, "--out", run,
                                         "--resume"), env=lab_env, capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    a, b = load_weights(tmp_path / "whole" / "model.safetensors"), load_weights(run / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_two_processes_with_torchrun_match_one_process(tmp_path, lab_env):
    args = ["--steps", 60, "--batch", 16, "--checkpoint-every", 30]
    one = subprocess.run(lstmkit_cmd(*TRAIN, *args, "--out", tmp_path / "one"), env=lab_env, capture_output=True,
                         text=True, timeout=120)
    assert one.returncode == 0, one.stderr
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or "torchrun"
    two = subprocess.run([torchrun, "--standalone", "--nproc_per_node=2", "-m", "lstmkit", *map(str, TRAIN),
                          *map(str, args), "--out", tmp_path / "two"], env=lab_env, capture_output=True, text=True,
                         timeout=150)
    assert two.returncode == 0, two.stderr[-3000:]
    summary = json.loads((tmp_path / "two" / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["steps"] == 60
    assert len([line for line in two.stdout.splitlines() if line.startswith("{")]) == 1  # rank 0 reports
    a, b = load_weights(tmp_path / "one" / "model.safetensors"), load_weights(tmp_path / "two" / "model.safetensors")
    # the same global batch split in two: equal up to the order of floating-point sums
    assert all(torch.allclose(a[k], b[k], atol=1e-4) for k in a)

    resumed = subprocess.run([torchrun, "--standalone", "--nproc_per_node=2", "-m", "lstmkit", *map(str, TRAIN),
                              *map(str, ["--steps", 90, "--batch", 16, "--checkpoint-every", 30, "--out",
                                         tmp_path / "two", "--resume"])],
                             env=lab_env, capture_output=True, text=True, timeout=150)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert json.loads((tmp_path / "two" / "summary.json").read_text())["steps"] == 90
