"""Explain's ranking as the explorer's unit order: loaded from a run's explain.json (or given from Python), carried
in the page's data per layer, and refused in one line when it does not fit the model."""

import json

import pytest
import torch

import lstmkit
from lstmkit import InputError
from lstmkit.cli import main
from lstmkit.explorer import data, from_model, from_run
from lstmkit.lab.explain import explain_run


def test_a_run_with_an_explain_result_carries_its_ranking_in_the_page_data(make_run):
    run = make_run(hidden=5)
    result = explain_run(run, sequences=16)  # writes RUN/explain/explain.json, as `lstmkit explain --run` does
    subject = from_run(run, max_sequences=3)
    ranked = [u["unit"] for u in sorted(result["units"], key=lambda u: u["rank"])]
    assert subject.describe()["ranking"] is True
    payload = data.sequence(subject, 0, 0, 0)
    assert payload["ranking"] == ranked and sorted(ranked) == list(range(5))
    assert json.dumps(payload)


def test_a_run_without_an_explain_result_has_no_ranking(make_run):
    subject = from_run(make_run(), max_sequences=2)
    assert subject.describe()["ranking"] is False and data.sequence(subject, 0, 0, 0)["ranking"] is None


def hand_written(path, units, *, layers=None, state="c"):
    layers = layers or [0] * len(units)
    path.parent.mkdir(parents=True, exist_ok=True)
    pairs = enumerate(zip(layers, units, strict=True))
    ranked = [{"layer": layer, "unit": u, "rank": k + 1} for k, (layer, u) in pairs]
    path.write_text(json.dumps({"state": state, "units": ranked}))
    return path


def test_a_two_layer_ranking_is_split_per_layer_in_rank_order(make_run):
    run = make_run(hidden=3, layers=2)
    hand_written(run / "explain" / "explain.json", [2, 1, 0, 0, 2, 1], layers=[1, 0, 1, 0, 0, 1])
    subject = from_run(run, max_sequences=2)
    assert subject.ranking == [[1, 0, 2], [2, 0, 1]]
    assert data.sequence(subject, 0, 1, 0)["ranking"] == [2, 0, 1]


@pytest.mark.parametrize(("units", "state", "says"), [
    ([0, 1, 2, 3, 4], "c", "layer 0 must order each of its 6 units 0..5 once, got 5 entries"),  # wrong H
    ([0, 1, 2, 3, 4, 4], "c", "does not match the model"),                                        # a unit missing
    ([0, 1, 2, 3, 4, 5], "h", "state 'h' but the model's state is 'c'"),                          # another model
])
def test_an_explain_result_that_does_not_fit_the_model_is_refused(make_run, units, state, says):
    run = make_run()
    hand_written(run / "explain" / "explain.json", units, state=state)
    with pytest.raises(InputError, match=says):
        from_run(run)


def test_cli_a_mismatched_explain_file_is_one_line_and_status_2(make_run, tmp_path, capsys):
    path = hand_written(tmp_path / "other.json", [0, 1, 2])
    assert main(["explore", "--run", str(make_run()), "--explain", str(path), "--export", str(tmp_path / "p.html"),
                 "--sequences", "2"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "other.json does not match the model" in err


def test_a_ranking_from_python_is_checked_against_the_model():
    lstm = lstmkit.LSTM(2, 4, batch_first=True)
    x = torch.randn(2, 5, 2)
    assert data.sequence(from_model(lstm, x, ranking=[3, 1, 0, 2]), 0, 0, 0)["ranking"] == [3, 1, 0, 2]
    both = lstmkit.LSTM(2, 4, batch_first=True, bidirectional=True)  # explain ranks the forward direction only
    assert data.sequence(from_model(both, x, ranking=[3, 1, 0, 2]), 0, 0, 1)["ranking"] is None
    with pytest.raises(InputError, match="must order each of its 4 units 0..3 once"):
        from_model(lstm, x, ranking=[3, 1, 0, 2, 4])
    with pytest.raises(InputError, match="ranks units of 2 layer"):
        from_model(lstm, x, ranking=[[0, 1, 2, 3], [0, 1, 2, 3]])
