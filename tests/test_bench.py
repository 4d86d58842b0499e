"""`lstmkit bench` on a tiny shape: every row is timed, ratios are to the right baseline, the command writes JSON.

Only the machinery is tested here; the figures themselves are measured by running the command (BENCHMARKS.md).
"""

import importlib.util
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lstmkit import bench, cli


@pytest.fixture
def tiny_shape(monkeypatch):
    monkeypatch.setitem(bench.SHAPES, "tiny", (6, 3, 5, 8))
    return "tiny"


def test_every_row_is_timed_against_its_own_baseline(tiny_shape):
    rows = bench.bench_shape(tiny_shape, list(bench.ROWS), [torch.float32], repeats=1, peak=100.0,
                             modes=["infer", "train"])
    infer = {r.row: r for r in rows if r.mode == "infer"}
    train = {r.row: r for r in rows if r.mode == "train"}
    assert set(infer) == set(bench.ROWS)
    assert set(train) == {r for r in bench.ROWS if "trace" not in r}   # a trace is an inference-time tool
    for table in (infer, train):
        assert table["torch.nn"].ratio == 1.0
        assert table["torch.nn proj"].ratio == pytest.approx(table["torch.nn proj"].ms / table["torch.nn"].ms)
        assert table["proj"].ratio == pytest.approx(table["proj"].ms / table["torch.nn proj"].ms)
        assert table["peephole"].ratio == pytest.approx(table["peephole"].ms / table["torch.nn"].ms)
        assert table["GRU zoneout"].ratio == pytest.approx(table["GRU zoneout"].ms / table["torch.nn GRU"].ms)
        assert table["RNN zoneout"].ratio == pytest.approx(table["RNN zoneout"].ms / table["torch.nn RNN"].ms)
        assert table["intervened"].ratio == pytest.approx(table["intervened"].ms / table["fused"].ms)
        assert table["GRU intervened"].ratio == pytest.approx(table["GRU intervened"].ms / table["GRU fused"].ms)
        assert table["intervened"].engine == table["fused"].engine   # the same engine, with and without
        assert all(r.ms > 0 and r.gflops > 0 for r in table.values())
    assert infer["naive"].engine == "-" and infer["layer_norm"].engine in ("fused", "reference")
    assert infer["trace"].engine == infer["layer_norm"].engine   # a no-grad trace runs where the variants run
    assert infer["GRU trace"].engine == infer["GRU zoneout"].engine and infer["GRU trace on torch"].engine == "torch"


def test_flops_count_the_backward_the_projection_and_the_gates(tiny_shape):
    assert bench.rnn_flops(10, 2, 3, 4, train=True) == 3 * bench.rnn_flops(10, 2, 3, 4)
    assert bench.rnn_flops(10, 2, 3, 4, P=2) < bench.rnn_flops(10, 2, 3, 4)
    assert bench.rnn_flops(10, 2, 3, 4, gates=3) == 3 / 4 * bench.rnn_flops(10, 2, 3, 4)


def test_lstmkit_bench_prints_the_table_and_writes_json(tiny_shape, tmp_path, capsys):
    path = tmp_path / "bench.json"
    assert cli.main(["bench", "--shapes", tiny_shape, "--repeats", "1", "--no-memory", "--json", str(path)]) == 0
    out = capsys.readouterr().out
    assert "GEMM peak" in out and "torch.nn proj" in out
    data = json.loads(path.read_text())
    assert data["repeats"] == 1 and data["machine"]["torch"] == torch.__version__
    assert {r["dtype"] for r in data["rows"]} == {"float32", "bfloat16"}
    assert all(r["shape"] == tiny_shape for r in data["rows"])


@pytest.mark.parametrize("argv", [["bench", "--repeats", "0"], ["bench", "--shapes", "nope"]])
def test_bad_bench_options_are_one_line_and_exit_2(argv, capsys):
    assert cli.main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: lstmkit bench") and "\n" not in err


# What torch raises for a bf16 LSTM on a CPU without AVX-512 bf16 (ONEDNN_MAX_CPU_ISA=AVX2 reproduces it).
NO_BF16_LSTM = ("could not create a primitive descriptor for the LSTM forward propagation primitive. Run workload "
                "with environment variable ONEDNN_VERBOSE=all to get additional diagnostic information.")


@pytest.fixture
def torch_nn_raises(monkeypatch):
    """bench_shape with the "torch.nn" row's call raising what the test sets in `error[0]`."""
    call, error = bench.timing._call, [RuntimeError(NO_BF16_LSTM)]

    def fake_call(row, module, x, train):
        if row != "torch.nn":
            return call(row, module, x, train)

        def run():
            raise error[0]
        return run

    monkeypatch.setattr(bench.timing, "_call", fake_call)
    return error


def test_a_row_this_cpu_cannot_run_is_na_with_its_reason_and_so_are_ratios_to_it(tiny_shape, torch_nn_raises):
    rows = bench.bench_shape(tiny_shape, ["torch.nn", "peephole", "torch.nn GRU", "GRU"], [torch.float32],
                             repeats=1, peak=100.0, modes=["infer"])
    by = {r.row: r for r in rows}
    assert by["torch.nn"].ms is None and by["torch.nn"].gflops is None
    assert "could not create a primitive descriptor for the LSTM forward" in by["torch.nn"].na
    assert by["peephole"].ms > 0 and by["peephole"].ratio is None and by["peephole"].na is None
    assert by["GRU"].ratio == pytest.approx(by["GRU"].ms / by["torch.nn GRU"].ms)   # other baselines unaffected
    lines = {line[38:59].strip(): line for line in bench.format_table(rows).splitlines()[2:]}  # by the row column
    assert "n/a" in lines["torch.nn"] and "LSTM forward propagation primitive" in lines["torch.nn"]
    ratio = {name: line.split()[-3] for name, line in lines.items()}      # ... ms ratio GF/s %peak
    assert ratio["peephole"] == "n/a" and ratio["GRU"] != "n/a"


def test_any_other_error_in_a_row_still_stops_the_bench(tiny_shape, torch_nn_raises):
    torch_nn_raises[0] = RuntimeError("shape '[3, 8]' is invalid for input of size 7")
    with pytest.raises(RuntimeError, match="is invalid for input"):
        bench.bench_shape(tiny_shape, ["torch.nn", "lstmkit"], [torch.float32], repeats=1, peak=1.0, modes=["infer"])


def test_the_json_carries_na_and_its_reason(tiny_shape, torch_nn_raises, tmp_path, capsys):
    path = tmp_path / "bench.json"
    argv = ["bench", "--quick", "--shapes", tiny_shape, "--repeats", "1", "--no-memory", "--json", str(path)]
    assert cli.main(argv) == 0                                                      # --quick: fp32 only
    rows = json.loads(path.read_text())["rows"]
    na = [r for r in rows if r["na"] is not None]
    assert {r["row"] for r in na} == {"torch.nn"} and len(na) == 2                  # infer and train
    assert all(r["ms"] is None and r["ratio"] is None and "primitive descriptor" in r["na"] for r in na)
    assert all(r["ratio"] is None for r in rows if r["row"] in ("lstmkit", "peephole"))
    assert "n/a" in capsys.readouterr().out


def _targets():
    spec = importlib.util.spec_from_file_location("targets", Path(__file__).parents[1] / "benchmarks" / "targets.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_targets_count_na_rows_as_not_measured_never_as_met():
    def row(name, dtype, ratio, ms=1.0):
        return {"shape": "s", "dtype": dtype, "mode": "infer", "row": name, "ms": ms, "ratio": ratio}

    data = {"rows": [row("lstmkit", "float32", 1.0), row("lstmkit", "bfloat16", None),
                     row("peephole", "bfloat16", None, ms=None), row("naive", "float32", 5.0, ms=5.0),
                     row("peephole", "float32", 2.0)]}
    lines = {line.split(" | ")[0].lstrip("| "): line for line in _targets().table(data).splitlines()}
    assert "| 1/1, 1 not measured (n/a) |" in lines["plain lstmkit / torch.nn"]
    assert "not measured (1 row n/a)" in lines["peephole, bf16 / torch.nn bf16"]
    assert "| 0/1 **missed** |" in lines["peephole, fp32 / torch.nn"]
    assert "| 1/1, 1 not measured (n/a) |" in lines["naive cell / peephole (speed-up)"]


def test_lab_targets_count_rows_whose_floor_misses_the_bound_as_beyond_the_machine():
    def row(shape, ratio, floor):
        return {"shape": shape, "dtype": "float32", "mode": "train", "row": "peephole", "ms": 1.0, "ratio": ratio,
                "floor": floor, "threads": 1}

    data = {"rows": [row("lab-a", 0.2, 0.05), row("lab-b", 0.9, 0.4), row("lab-c", 0.8, 0.1)]}
    lines = {line.split(" | ")[0].lstrip("| "): line for line in _targets().table(data).splitlines()}
    assert "| 1/3 **missed**, 1 beyond this machine's peak |" in lines["lab: peephole / its torch.nn, 1 thread"]


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"), reason="ONEDNN_MAX_CPU_ISA=AVX2 is x86's")
def test_bench_runs_to_the_end_on_a_cpu_without_bf16(tmp_path):
    """The real failure: oneDNN limited to AVX2 (no AVX-512, no bf16 instructions) cannot build a bf16 LSTM."""
    path = tmp_path / "bench.json"
    argv = ["bench", "--shapes", "tiny", "--repeats", "1", "--no-memory", "--json", str(path)]
    code = ("import sys; from lstmkit import bench, cli; bench.SHAPES['tiny'] = (6, 3, 5, 8); "
            f"sys.exit(cli.main({argv!r}))")
    env = {**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = json.loads(path.read_text())["rows"]
    torch_bf16 = [r for r in rows if r["row"] == "torch.nn" and r["dtype"] == "bfloat16"]
    assert len(torch_bf16) == 2 and all("primitive descriptor" in r["na"] for r in torch_bf16)
    assert all(r["na"] is None and r["ms"] > 0 for r in rows if r["dtype"] == "float32")
    assert all((r["na"] is None) == (r["ms"] is not None) for r in rows)


@pytest.mark.skipif(not importlib.util.find_spec("ninja") and not bench.timing.fma_rate(1),
                    reason="the FMA peak comes from the fused engine")
def test_lab_group_runs_each_thread_count_against_the_fma_peak(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(bench.LAB_SHAPES, "lab-tiny", (4, 3, 5, 8))
    path = tmp_path / "lab.json"
    assert cli.main(["bench", "--lab", "--shapes", "lab-tiny", "--repeats", "1", "--json", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.count("FMA peak") == len(bench.LAB_THREADS)
    data = json.loads(path.read_text())
    assert set(data["fma_gflops"]) == {str(n) for n in bench.LAB_THREADS}
    rows = data["rows"]
    assert {r["threads"] for r in rows} == set(bench.LAB_THREADS) and {r["dtype"] for r in rows} == {"float32"}
    for n in bench.LAB_THREADS:
        mine = {r["row"]: r for r in rows if r["threads"] == n and r["mode"] == "train"}
        assert set(mine) == set(bench.LAB_ROWS)
        assert mine["GRU"]["ratio"] == pytest.approx(mine["GRU"]["ms"] / mine["torch.nn GRU"]["ms"])
        peak = data["fma_gflops"][str(n)]
        assert mine["peephole"]["of_peak"] == pytest.approx(mine["peephole"]["gflops"] / peak)
        # floor: the row's FLOPs at the FMA peak over its baseline's time, i.e. its ratio times its fraction of peak
        assert mine["peephole"]["floor"] == pytest.approx(mine["peephole"]["ratio"] * mine["peephole"]["of_peak"])
        assert mine["torch.nn"]["floor"] == pytest.approx(mine["torch.nn"]["of_peak"])
    assert "floor" in out.splitlines()[1]
    assert torch.get_num_threads() == data["machine"]["threads"]     # the thread count is restored
