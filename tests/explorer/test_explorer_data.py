"""What the page reads: subjects built from runs and models, the exact record values, the checks."""

import json

import pytest
import torch

import lstmkit
from lstmkit import InputError, InputTypeError
from lstmkit.explorer import data, from_model, from_run
from lstmkit.explorer.subject import check_comparable
from lstmkit.lab.checkpoint import CheckpointError


def test_a_sequence_payload_holds_the_trace_bit_for_bit():
    torch.manual_seed(0)
    lstm = lstmkit.LSTM(3, 5, num_layers=2, bidirectional=True)
    x = torch.randn(4, 9, 3)
    subject = from_model(lstm, x)
    payload = data.sequence(subject, 2, 1, 1)
    with torch.no_grad():  # the explorer runs inference, one sequence at a time
        trace = lstm.trace(x[2:3].transpose(0, 1))  # sequence 2; the module is not batch_first: (T, 1, .)
    for name in "ifgoch":
        got = data.decode(payload["records"][name]["data"], tuple(payload["records"][name]["shape"]))
        assert torch.equal(got, getattr(trace[1, 1], name)[:, 0])
    assert payload["track"]["kind"] == "series" and len(payload["track"]["values"]) == 3


def test_a_run_is_rebuilt_with_its_held_out_set_and_symbols(make_run):
    subject = from_run(make_run(), max_sequences=5)
    assert subject.x.shape == (5, 12, 8) and subject.kind == "LSTM"
    payload = data.sequence(subject, 0, 0, 0)
    assert "".join(payload["track"]["symbols"][k] for k in payload["track"]["ids"])[0] == "B"
    assert payload["readout"]["label"].startswith("p(target class")
    assert json.dumps(payload)  # the page's JSON


def test_a_missing_run_folder_is_named(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        from_run(tmp_path / "nowhere")


def test_a_folder_without_config_is_not_a_finished_run(tmp_path):
    with pytest.raises(CheckpointError, match="not a finished run"):
        from_run(tmp_path)


def test_corrupt_weights_are_named(make_run):
    run = make_run()
    (run / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        from_run(run)


def test_weights_of_another_model_are_refused(make_run, tmp_path):
    run, other = make_run("a"), make_run("b", model="gru")
    (run / "model.safetensors").write_bytes((other / "model.safetensors").read_bytes())
    with pytest.raises(CheckpointError, match="does not hold the weights"):
        from_run(run)


def test_inputs_the_model_cannot_read_are_refused_before_any_server():
    with pytest.raises(InputError, match="input_size=4: the model and the inputs do not match"):
        from_model(lstmkit.GRU(4, 3), torch.randn(2, 5, 6))
    with pytest.raises(InputTypeError, match="`model` must be an lstmkit LSTM"):
        from_model(torch.nn.LSTM(4, 3), torch.randn(2, 5, 4))
    with pytest.raises(InputError, match="`symbols` must name each of the 4"):
        from_model(lstmkit.GRU(4, 3), torch.randn(2, 5, 4), symbols="ab")


def test_runs_of_different_tasks_cannot_be_compared(make_run):
    a, b = from_run(make_run("a")), from_run(make_run("b", seq_len=14))
    with pytest.raises(InputError, match="do not read the same sequences"):
        check_comparable(a, b)


def test_a_sequence_out_of_range_names_the_range(make_run):
    subject = from_run(make_run(), max_sequences=3)
    with pytest.raises(InputError, match=r"\[0, 2\]"):
        data.sequence(subject, 3, 0, 0)


def test_a_trace_shows_a_heatmap_per_record_in_jupyter():
    trace = lstmkit.GRU(2, 4, batch_first=True).trace(torch.randn(3, 7, 2))
    html = trace._repr_html_()
    assert html.count("<img") == 4 and all(f"<b>{name}</b>" in html for name in "rznh")
    assert "data:image/png;base64," in html


@pytest.mark.parametrize("task, seq_len, kind, readout", [
    ("temporal-order", 10, "symbols", "p(target class"), ("adding", 6, "series", "output[0]"),
    ("adding-1997", 24, "series", "output[0]"), ("copy", 3, "symbols", "cross-entropy per step"),
    ("recall", 4, "symbols", "p(target class"), ("reber", 12, "symbols", "loss per step"),
    ("digits", 64, "pixels", "p(target class"), ("permuted-digits", 64, "pixels", "p(target class"),
    ("sunspots", 24, "series", "output[0]")])
def test_every_lab_task_has_a_track_and_a_readout(make_run, task, seq_len, kind, readout):
    from lstmkit.explorer.subject import LAB_TRACKS
    from lstmkit.lab.tasks import TASKS

    assert set(LAB_TRACKS) == set(TASKS)
    subject = from_run(make_run(task=task, seq_len=seq_len), max_sequences=2)
    payload = data.sequence(subject, 1, 0, 0)
    assert payload["track"]["kind"] == kind and payload["readout"]["label"].startswith(readout)
    assert len(payload["readout"]["values"]) == subject.x.shape[1]
    json.dumps(payload, allow_nan=False)


def test_tokens_are_drawn_one_per_step():
    subject = from_model(lstmkit.RNN(2, 3), torch.randn(2, 3, 2), tokens=[["the", "cat", "sat"], ["a", "b", "c"]])
    assert data.track(subject, 0) == {"kind": "tokens", "tokens": ["the", "cat", "sat"]}
    with pytest.raises(InputError, match="one list of 3 strings per sequence"):
        from_model(lstmkit.RNN(2, 3), torch.randn(2, 3, 2), tokens=[["x"]])
