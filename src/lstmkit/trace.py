"""What :meth:`lstmkit.LSTM.trace` returns: the forward's results plus every step's gates and states."""

from __future__ import annotations

from collections import namedtuple
from dataclasses import dataclass, field

from torch import Tensor

_record_types: dict[tuple[str, ...], type] = {}


def record_type(names: tuple[str, ...]) -> type:
    """A named tuple with one field per recorded value (``i f g o c h`` for an LSTM)."""
    if names not in _record_types:
        _record_types[names] = namedtuple("Record", names)
    return _record_types[names]


@dataclass
class Trace:
    """``output`` and ``state`` are exactly what ``forward`` returns for the same call.

    ``trace[layer, direction]`` is a record (a named tuple) of tensors, one per value the cell reveals
    (LSTM ``i, f, g, o, c, h``; GRU ``r, z, n, h``; RNN ``a, h``), each laid out like that layer's output:
    ``(T, B, .)``, ``(B, T, .)`` with ``batch_first``, ``(T, .)`` for unbatched input. For packed input the
    records are padded with zeros past each sequence's end, in the caller's batch order, and ``lengths`` holds
    the sequence lengths; otherwise ``lengths`` is None. ``h`` is the direction's output (projected when
    ``proj_size > 0``); ``c`` the cell state after the step. ``batch_first`` says how batched records are laid out.
    """

    output: object
    state: object
    records: list[list[tuple]] = field(repr=False)
    lengths: Tensor | None = None
    batch_first: bool = False

    def __getitem__(self, key) -> tuple:
        if isinstance(key, int):
            key = (key, 0)
        if not (isinstance(key, tuple) and len(key) == 2 and all(isinstance(k, int) for k in key)):
            raise TypeError(f"index a trace with [layer, direction], got {key!r}")
        layer, direction = key
        if not (-len(self.records) <= layer < len(self.records)):
            raise IndexError(f"layer {layer} out of range: the module has {len(self.records)} layers")
        row = self.records[layer]
        if not (-len(row) <= direction < len(row)):
            raise IndexError(f"direction {direction} out of range: the module has {len(row)} directions")
        return row[direction]

    @property
    def num_layers(self) -> int:
        return len(self.records)

    @property
    def num_directions(self) -> int:
        return len(self.records[0])

    def __iter__(self):
        """Yields ``(layer, direction, record)`` for every layer and direction."""
        for layer, row in enumerate(self.records):
            for direction, record in enumerate(row):
                yield layer, direction, record
