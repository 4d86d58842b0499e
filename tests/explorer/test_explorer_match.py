"""Select and match: the units on across a range, and the ranges where the same units are on."""

import pytest
import torch

from lstmkit import InputError
from lstmkit.explorer.match import match, on_units


def brute_force(values, seq, start, stop, threshold, top):
    """The rule as the module docstring states it, one window at a time."""
    S = set(torch.nonzero((values[seq, start : stop + 1] >= threshold).all(0)).flatten().tolist())
    L = stop - start + 1
    windows = []
    for n in range(values.shape[0]):
        for t in range(values.shape[1] - L + 1):
            W = set(torch.nonzero((values[n, t : t + L] >= threshold).all(0)).flatten().tolist())
            windows.append((len(S & W) / len(S | W) if S | W else 0.0, n, t, len(S & W)))
    query = next(w for w in windows if w[1:3] == (seq, start))
    windows.sort(key=lambda w: (w is not query, -w[0], w[1], w[2]))
    hits, taken = [], {}
    for score, n, t, inter in windows:
        if len(hits) == top or score <= 0:
            break
        if any(abs(t - u) < L for u in taken.get(n, [])):
            continue
        taken.setdefault(n, []).append(t)
        hits.append({"seq": n, "start": t, "stop": t + L - 1, "score": score, "units_on": inter})
    return {"units": sorted(S), "hits": hits}


@pytest.mark.parametrize("seed", range(5))
def test_match_ranks_windows_as_the_rule_states(seed):
    g = torch.Generator().manual_seed(seed)
    values = torch.rand(6, 15, 7, generator=g)
    seq, start = seed % 6, seed
    assert match(values, seq, start, start + 2, 0.3, top=8) == brute_force(values, seq, start, start + 2, 0.3, 8)


def test_the_query_is_the_first_hit_and_a_planted_copy_is_found():
    values = torch.zeros(4, 20, 5)
    values[1, 5:9, [0, 2]] = 1.0     # the query: units 0 and 2 on across steps 5..8
    values[3, 11:15, [0, 2]] = 1.0   # the same pattern elsewhere
    values[2, 0:4, [0, 1, 2]] = 1.0  # a superset: Jaccard 2/3
    result = match(values, 1, 5, 8, 0.5, top=3)
    assert result["units"] == [0, 2]
    assert [(h["seq"], h["start"], h["score"]) for h in result["hits"]] == [(1, 5, 1.0), (3, 11, 1.0),
                                                                           (2, 0, 2 / 3)]


def test_a_threshold_no_unit_passes_says_what_to_change():
    with pytest.raises(InputError, match="lower the threshold"):
        match(torch.zeros(2, 10, 3), 0, 2, 4, 0.5)


def test_a_range_outside_the_sequence_is_refused():
    with pytest.raises(InputError, match="start <= stop < T=10"):
        on_units(torch.zeros(10, 3), 4, 12, 0.5)
