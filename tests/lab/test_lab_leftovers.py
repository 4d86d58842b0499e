"""What a killed or stopped run leaves: no temporaries for good, and for SIGTERM/SIGHUP a message, the last
checkpoint and the shell's exit status."""

import os
import signal
import subprocess
import sys
import time

import pytest

from lstmkit.lab.checkpoint import load_checkpoint
from lstmkit.lab.model import ModelSpec
from lstmkit.lab.trainer import TrainConfig, train

SMALL = TrainConfig(task="temporal-order", seq_len=10, model=ModelSpec(model="rnn", hidden=2), steps=4, batch=2,
                    eval_every=2, checkpoint_every=2, early_stop=False)


def a_dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


@pytest.mark.parametrize("resume", [False, True], ids=["start", "resume"])
def test_temporaries_of_dead_processes_are_removed_on_the_next_start_or_resume(resume, tmp_path):
    if resume:
        train(SMALL, tmp_path)
    else:
        tmp_path.mkdir(exist_ok=True)
    dead = tmp_path / f".checkpoint.safetensors.tmp-{a_dead_pid()}"
    live = tmp_path / f".metrics.jsonl.tmp-{os.getppid()}"  # a live process may still be writing it
    for path in (dead, live):
        path.write_bytes(b"x" * 1000)
    train(TrainConfig(**{**SMALL.__dict__, "steps": 6}), tmp_path, resume=resume)
    assert not dead.exists() and live.exists()


@pytest.mark.parametrize(("sig", "status"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129)], ids=["TERM", "HUP"])
def test_sigterm_and_sighup_stop_training_with_a_message_keeping_the_last_checkpoint(sig, status, tmp_path,
                                                                                     lab_env):
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "lstmkit", "train", "--task", "temporal-order", "--model", "rnn",
                             "--seq-len", "10", "--hidden", "2", "--batch", "2", "--steps", "1000000",
                             "--eval-every", "1000", "--checkpoint-every", "20", "--quiet", "--out", str(run)],
                            env=lab_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    checkpoint = run / "checkpoint.safetensors"
    deadline = time.monotonic() + 60
    while not checkpoint.exists() and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.01)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == status, err
    assert err.count("\n") == 1 and f"stopped by {signal.Signals(sig).name}" in err and "checkpoint is kept" in err
    assert load_checkpoint(checkpoint)[2]["step"] >= 20
    assert not [p.name for p in run.iterdir() if ".tmp-" in p.name]
