"""The Intervene view's request, as :mod:`lstmkit.interventions` calls: select units and a span, choose clamp,
ablate or patch, and rerun the model with the change inside the recurrence.

A request names the sequence, layer, direction and record, the units (a list, or "all") and the step span
(inclusive), and:

- ``clamp``: ``value``, the number the selected values become;
- ``ablate``: ``mean`` false (the values become 0) or true (each unit's mean over the held-out set's steps, from
  the subject's full trace);
- ``patch``: ``source``, another sequence of the subject whose values at the same steps and units are copied in.

The reply holds the sequence before and after (every record, the readout), so the page shows them side by side.
"""

from __future__ import annotations

from typing import Any

import lstmkit

from ..errors import InputError, InputTypeError
from . import data
from .subject import Subject

KINDS = ("clamp", "ablate", "patch")


def build(subject: Subject, request: dict) -> tuple[int, int, int, list]:
    """``(seq, layer, direction, interventions)`` from a request (see the module docstring)."""
    seq = subject.check_sequence(_int(request, "seq"))
    layer, direction = _int(request, "layer", 0), _int(request, "direction", 0)
    subject.check_layer_direction(layer, direction)
    name = subject.check_record(request.get("record"))
    kind = request.get("kind")
    if kind not in KINDS:
        raise InputError(f"`kind` must be one of {', '.join(KINDS)}, got {kind!r}")
    units = request.get("units")
    if units == "all":
        units = None
    elif not isinstance(units, list) or not units or not all(isinstance(u, int) for u in units):
        raise InputError(f"`units` must be a non-empty list of unit indices or \"all\", got {units!r}")
    start, stop = _int(request, "start"), _int(request, "stop")
    T = subject.x.shape[1]
    if not 0 <= start <= stop < T:
        raise InputError(f"the span must satisfy 0 <= start <= stop < T={T}, got start={start}, stop={stop}")
    where: dict[str, Any] = dict(layer=layer, direction=direction, units=units, steps=slice(start, stop + 1))
    if kind == "clamp":
        value = request.get("value")
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise InputTypeError(f"`value` of a clamp must be a number, got {value!r}")
        iv = lstmkit.clamp(name, float(value), **where)
    elif kind == "ablate":
        iv = lstmkit.ablate(name, mean=subject.full_trace() if request.get("mean") else None, **where)
    else:
        source = subject.check_sequence(_int(request, "source"))
        source_trace, _ = subject.run(subject.x[source : source + 1])
        iv = lstmkit.patch(name, source_trace, **where)
    return seq, layer, direction, [iv]


def run(subject: Subject, request: dict) -> dict:
    """The before and after of one intervention request."""
    seq, layer, direction, interventions = build(subject, request)
    return {"before": data.sequence(subject, seq, layer, direction),
            "after": data.sequence(subject, seq, layer, direction, interventions=interventions)}


def _int(request: dict, key: str, default: int | None = None) -> int:
    value = request.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise InputTypeError(f"`{key}` must be an int, got {value!r}")
    return value
