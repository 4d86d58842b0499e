"""The explain ranking as a unit order: which units ``lstmkit explain`` found carry the memory, most first.

``lstmkit explain`` (:mod:`lstmkit.lab.explain`) ranks the units of the state (the LSTM's ``c``, a GRU's or an
RNN's ``h``) over all layers of the forward direction, in ``explain.json``'s ``units`` (``layer``, ``unit``,
``rank``). Here that becomes one list per layer: the layer's units in rank order. The page orders every record
with that many units (an LSTM's ``i f g o c``, and ``h`` without projection; a GRU's or RNN's every record) by it,
in the forward direction. A ranking must name every unit of every layer exactly once, or it is refused.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import InputError
from ..modules import Recurrent

EXPLAIN_FILE = Path("explain") / "explain.json"  # where `lstmkit explain --run DIR` writes it by default


def check(ranking, rnn: Recurrent, *, source: str = "`ranking`") -> list[list[int]]:
    """``ranking`` (a list of unit indices for a one-layer model, or one such list per layer) as one list per
    layer, or InputError when it is not an order of the model's ``hidden_size`` units in each of its layers."""
    H, L = rnn.hidden_size, rnn.num_layers
    if not isinstance(ranking, (list, tuple)) or not ranking:
        raise InputError(f"{source} must be a list of unit indices (or one list per layer), got {ranking!r:.60}")
    if all(_is_int(u) for u in ranking):
        layers = [list(ranking)]
    elif all(isinstance(r, (list, tuple)) for r in ranking):
        layers = [list(r) for r in ranking]
    else:
        raise InputError(f"{source} must be a list of unit indices (or one list per layer), got {ranking!r:.60}")
    if len(layers) != L:
        raise InputError(f"{source} ranks units of {len(layers)} layer(s) but the model has {L}")
    for layer, units in enumerate(layers):
        if not all(_is_int(u) for u in units) or sorted(units) != list(range(H)):
            raise InputError(f"{source} does not match the model: layer {layer} must order each of its {H} units "
                             f"0..{H - 1} once, got {len(units)} entries ({_short(units)})")
    return [[int(u) for u in units] for units in layers]


def from_explain(result: dict, rnn: Recurrent, *, source: str) -> list[list[int]]:
    """The per-layer ranking in an explain result (the JSON :func:`lstmkit.lab.explain.explain` returns)."""
    state = "c" if "c" in rnn.cell.records else "h"
    if not isinstance(result, dict) or not isinstance(result.get("units"), list):
        raise InputError(f"{source} is not an explain result: it has no list of ranked `units`")
    if result.get("state", state) != state:
        raise InputError(f"{source} ranks units of the state {result.get('state')!r} but the model's state is "
                         f"{state!r}: it was written for another model")
    try:
        ranked = sorted(result["units"], key=lambda u: u["rank"])
        layers: list[list] = [[] for _ in range(max([rnn.num_layers, *(u["layer"] + 1 for u in ranked)]))]
        for u in ranked:
            layers[u["layer"]].append(u["unit"])
    except (KeyError, TypeError, IndexError) as err:
        raise InputError(f"{source} is not an explain result: a unit lacks its layer, unit or rank ({err})") from None
    return check(layers, rnn, source=source)


def load(path: str | Path, rnn: Recurrent) -> list[list[int]]:
    """The ranking in the explain.json at ``path``."""
    path = Path(path)
    try:
        result = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise InputError(f"cannot read the explain result {path}: {err}") from None
    return from_explain(result, rnn, source=f"explain result {path}")


def _is_int(u) -> bool:
    return isinstance(u, int) and not isinstance(u, bool)


def _short(units: list) -> str:
    return ", ".join(map(str, units[:8])) + (", ..." if len(units) > 8 else "")
