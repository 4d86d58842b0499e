"""`lstmkit bench` on a tiny shape: every row is timed, ratios are to the right baseline, the command writes JSON.

Only the machinery is tested here; the figures themselves are measured by running the command (BENCHMARKS.md).
"""

import json

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
