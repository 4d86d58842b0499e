"""The command line's answer to a bad path, a full disk or a value too large: one line naming the argument, exit
status 2, before any work."""

import errno
import os

import pytest

import lstmkit.bench.command
import lstmkit.lab.files
from lstmkit.cli import main

TRAIN = ["train", "--task", "temporal-order", "--model", "lstm", "--seq-len", "10", "--hidden", "2", "--batch", "2",
         "--steps", "2", "--quiet"]


def one_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    return err


@pytest.fixture
def a_file(tmp_path):
    path = tmp_path / "a-file"
    path.write_text("not a folder")
    return path


@pytest.mark.parametrize("command", [
    ["train", "--task", "adding", "--model", "lstm"], ["gradflow", "--run", "/nonexistent/run"],
    ["sweep", "--lengths", "5"], ["demo", "--seeds", "1"]], ids=lambda c: c[0])
@pytest.mark.parametrize("under", [False, True], ids=["a-file", "under-a-file"])
def test_an_out_that_is_or_is_under_a_file_is_named_before_any_work(command, under, a_file, capsys):
    out = a_file / "run" if under else a_file
    assert main([*command, "--out", str(out)]) == 2
    err = one_line(capsys)
    assert f"--out {out}" in err and "is a file" in err


@pytest.mark.parametrize("resume", [[], ["--resume"]], ids=["new", "resume"])
def test_a_checkpoint_path_that_is_a_folder_is_one_line(resume, tmp_path, capsys):
    (tmp_path / "checkpoint.safetensors").mkdir()
    assert main([*TRAIN, "--out", str(tmp_path), *resume]) == 2
    assert "checkpoint.safetensors is not a file" in one_line(capsys)


@pytest.mark.parametrize(("option", "value", "message"), [
    ("--lr", "1e300", "argument --lr: expected a finite number in (0, 10], got 1e300"),
    ("--seed", "1e23", "argument --seed: expected an integer in [0, 2**63), got '1e23'"),
    ("--seed", str(10**23), "argument --seed: expected an integer in [0, 2**63)"),
    ("--hidden", "100000000", "--hidden 100000000"),
    ("--batch", "1000000000", "--batch 1000000000"),
    ("--seq-len", "1000000000", "--seq-len 1000000000"),
])
def test_values_too_large_to_run_are_named_before_any_work(option, value, message, tmp_path, capsys):
    args = list(TRAIN)
    if option in args:
        i = args.index(option)
        del args[i : i + 2]
    out = tmp_path / "run"
    assert main([*args, option, value, "--out", str(out)]) == 2
    err = one_line(capsys)
    assert message in err
    if option in ("--hidden", "--batch", "--seq-len"):
        assert "of memory" in err and "of RAM" in err  # the estimate and the limit
    assert not out.exists()


def test_sweep_and_demo_refuse_a_run_too_large_for_memory_before_any_work(tmp_path, capsys):
    assert main(["sweep", "--lengths", "5,1000000000", "--out", str(tmp_path / "sweep")]) == 2
    assert "--seq-len 1000000000" in one_line(capsys)
    assert main(["demo", "--seq-len", "1000000000", "--out", str(tmp_path / "demo")]) == 2
    assert "--seq-len 1000000000" in one_line(capsys)
    assert not (tmp_path / "sweep").exists() and not (tmp_path / "demo").exists()


def test_bench_json_in_a_missing_folder_is_refused_before_the_benchmark(tmp_path, capsys, monkeypatch):
    def started(*a, **kw):
        raise AssertionError("the benchmark started")

    monkeypatch.setattr(lstmkit.bench.command, "bench_shape", started)
    monkeypatch.setattr(lstmkit.bench.command, "gemm_rate", started)
    path = tmp_path / "bad" / "path.json"
    assert main(["bench", "--quick", "--json", str(path)]) == 2
    assert f"--json {path}: the folder {path.parent} does not exist" in one_line(capsys)
    assert lstmkit.bench.main(["--quick", "--json", str(tmp_path)]) == 2
    assert f"--json {tmp_path} is a folder" in one_line(capsys)


@pytest.mark.parametrize(("code", "reason"), [(errno.ENOSPC, "No space left on device"),
                                              (errno.EROFS, "Read-only file system")])
def test_a_full_or_read_only_disk_is_one_line_naming_the_file_and_leaves_no_temporary(code, reason, tmp_path,
                                                                                      capsys, monkeypatch):
    def refuse(fd):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(lstmkit.lab.files.os, "fsync", refuse)  # the data reached the file, the disk refused it
    out = tmp_path / "run"
    assert main([*TRAIN, "--out", str(out)]) == 2
    err = one_line(capsys)
    assert f"cannot write {out / 'config.json'}: {reason}" in err
    assert not [p.name for p in out.iterdir() if ".tmp-" in p.name]


def test_an_out_in_a_folder_we_may_not_write_is_named_before_any_work(tmp_path, capsys, monkeypatch):
    import lstmkit._rules

    monkeypatch.setattr(lstmkit._rules.os, "access", lambda path, mode: False)  # as a read-only mount answers
    out = tmp_path / "run"
    assert main([*TRAIN, "--out", str(out)]) == 2
    assert f"--out {out}: cannot write in {tmp_path} (permission denied)" in one_line(capsys)
    assert not out.exists()
