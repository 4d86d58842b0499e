"""What every engine is: a name, a reason it cannot serve a call (or None), and the run itself.

``run(cell, seq, hx, weights, config, *, trace) -> (output, state, records)``: ``seq``/``output`` are
:class:`lstmkit.sequences.Sequences`; ``hx``/``state`` tuples of ``(L*D, B, S)`` tensors (one per entry of
``cell.states``); ``weights[layer][direction]`` a :class:`lstmkit.cells.Weights`; ``records`` is None unless
``trace``, else ``records[layer][direction]`` is a tuple of time-major ``(T, B, .)`` tensors in the order of
``cell.records``, zero past each sequence's end. Every engine computes the same results (to rounding); they
differ in speed and in what they can serve, which ``why_not`` says.
"""

from __future__ import annotations

from typing import Protocol

from torch import Tensor

from ..cells import Cell, Weights
from ..sequences import Sequences
from .config import RunConfig

Records = list[list[tuple[Tensor, ...]]]


class Engine(Protocol):
    NAME: str

    def why_not(self, cell: Cell, config: RunConfig, x: Tensor | None = None, *,
                trace: bool = False) -> str | None:
        """None when this engine computes exactly this call (``x`` None: any input), else why it cannot."""
        ...

    def run(self, cell: Cell, seq: Sequences, hx: tuple[Tensor, ...], weights: list[list[Weights]],
            config: RunConfig, *, trace: bool) -> tuple[Sequences, tuple[Tensor, ...], Records | None]:
        ...
