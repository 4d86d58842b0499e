"""The JSON the page reads: a subject's description and, per sequence, layer and direction, every record.

A sequence's records are those of ``rnn.trace`` on that sequence alone under ``torch.no_grad()`` (inference; the
engines may differ from a batched or gradient-recording call in the last bits of a float32).

Records travel as base64 of little-endian float32, row-major ``(T, S)``: the exact values ``trace`` holds (a
float32 model's values bit for bit), about a third of the size of decimal text. The page decodes them into
``Float32Array``s (``explorer.js``: ``decodeRecord``).
"""

from __future__ import annotations

import base64

import numpy as np
import torch
from torch import Tensor

from .subject import Subject


def encode(t: Tensor) -> str:
    """``t`` as base64 of little-endian float32 in row-major order."""
    a = t.detach().to(torch.float32).contiguous().cpu().numpy().astype("<f4", copy=False)
    return base64.b64encode(a.tobytes()).decode("ascii")


def decode(text: str, shape: tuple[int, ...]) -> Tensor:
    """The inverse of :func:`encode`."""
    return torch.from_numpy(np.frombuffer(base64.b64decode(text), dtype="<f4").copy()).reshape(shape)


def meta(subjects: list[Subject], *, mode: str, match_sequences: int | None = None) -> dict:
    """What the page needs before any sequence: the subjects (the first is explored, the second compared) and
    whether a server answers (``mode`` "server") or everything is in the file (``mode`` "file")."""
    return {"mode": mode, "subjects": [s.describe() for s in subjects],
            "match_sequences": match_sequences if match_sequences is not None else len(subjects[0].x)}


def track(subject: Subject, seq: int) -> dict:
    """The input of sequence ``seq`` as the page draws it."""
    x = subject.x[seq]  # (T, I)
    kind = subject.track["kind"]
    out: dict = {"kind": kind}
    if kind == "symbols":
        ids = x.argmax(-1)
        present = x.abs().sum(-1) > 0  # a step without a symbol (padding past a string's end) is all zeros
        out["symbols"] = list(subject.track["symbols"])
        out["ids"] = torch.where(present, ids, torch.full_like(ids, -1)).tolist()
    elif kind == "pixels":
        out["values"] = x[:, 0].tolist()
        out["image_width"] = subject.track.get("image_width")
    elif kind == "tokens":
        out["tokens"] = subject.track["tokens"][seq]
    else:
        out["channels"] = subject.track["channels"]
        out["values"] = x.t().tolist()  # (I, T)
    return out


def sequence(subject: Subject, seq: int, layer: int, direction: int, *, interventions: list | None = None) -> dict:
    """Every record of one sequence at one layer and direction, with the input track and the model's readout."""
    subject.check_sequence(seq)
    subject.check_layer_direction(layer, direction)
    trace, out = subject.run(subject.x[seq : seq + 1], interventions)
    return payload(subject, seq, layer, direction, trace, out, row=0)


def payload(subject: Subject, seq: int, layer: int, direction: int, trace, out: Tensor, *, row: int) -> dict:
    records = {}
    for name in subject.records:
        r = subject.record(trace, layer, direction, name)[row]  # (T, S)
        records[name] = {"shape": list(r.shape), "data": encode(r)}
    readout = subject.readout(out[row], seq)
    return {"seq": seq, "layer": layer, "direction": direction, "records": records, "track": track(subject, seq),
            "readout": readout, "ranking": subject.ranking_of(layer, direction)}

