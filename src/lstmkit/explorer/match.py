"""Select and match (LSTMVis's core, Strobelt et al. 2016): the units "on" across a selected range, and the other
ranges where the same units are on.

Selection: in sequence ``seq``, steps ``start .. stop`` (inclusive) of one record, a unit is **on** when its value
is at least ``threshold`` at every step of the range. Matching: every window of the same length in every searched
sequence has its own on-set; its score is the Jaccard index |S ∩ W| / |S ∪ W| between the selected on-set S and
the window's W (1: exactly the same units on). Windows are ranked by score, then by sequence and start; within a
sequence a window that overlaps a better one is skipped, so each hit is a distinct place. The query itself is the
first hit (its score is 1 by construction).

``explorer.js`` (``matchRanges``) implements the same rule for the exported page; the browser tests check both
against this module.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import InputError


def on_units(values: Tensor, start: int, stop: int, threshold: float) -> Tensor:
    """Bool mask (S,) of the units of ``values`` (T, S) that are >= ``threshold`` at every step of start..stop."""
    T = values.shape[0]
    if not (0 <= start <= stop < T):
        raise InputError(f"the selected range must satisfy 0 <= start <= stop < T={T}, got start={start}, "
                         f"stop={stop}")
    return (values[start : stop + 1].double() >= threshold).all(0)  # in float64, as the page compares


def window_on(values: Tensor, length: int, threshold: float) -> Tensor:
    """Bool (N, T - length + 1, S): unit s is on across steps t .. t + length - 1 of sequence n."""
    lowest = -F.max_pool1d(-values.transpose(1, 2).float(), length, stride=1)  # (N, S, T - L + 1)
    return (lowest.double() >= threshold).transpose(1, 2)


def match(values: Tensor, seq: int, start: int, stop: int, threshold: float, *, top: int = 20) -> dict:
    """``values`` (N, T, S) one record over the searched sequences. Returns the selected units and the ``top`` hits:
    ``{"units": [...], "hits": [{"seq", "start", "stop", "score", "units_on"}]}``."""
    selected = on_units(values[seq], start, stop, threshold)  # (S,)
    if not selected.any():
        raise InputError(f"no unit is on (>= {threshold:g}) at every step {start}..{stop}: lower the threshold "
                         "or select a shorter range")
    length = stop - start + 1
    on = window_on(values, length, threshold)  # (N, W, S)
    inter = (on & selected).sum(-1)  # (N, W)
    union = (on | selected).sum(-1)
    score = inter.double() / union.double()
    N, W = score.shape
    # rank by score, then sequence, then start: a stable sort of the (n, t)-ordered windows by descending score
    order = torch.sort(-score.reshape(-1), stable=True).indices.tolist()
    query = seq * W + start  # score 1 always: listed first, so its neighbours cannot push it out
    order = [query, *(k for k in order if k != query)]
    flat = score.reshape(-1).tolist()
    taken: dict[int, list[int]] = {}
    hits: list[dict] = []
    for k in order:
        if len(hits) == top or flat[k] <= 0:
            break
        n, t = divmod(k, W)
        if any(abs(t - u) < length for u in taken.get(n, [])):
            continue
        taken.setdefault(n, []).append(t)
        hits.append({"seq": n, "start": t, "stop": t + length - 1, "score": flat[k],
                     "units_on": int(inter[n, t])})
    return {"units": torch.nonzero(selected).flatten().tolist(), "hits": hits}
