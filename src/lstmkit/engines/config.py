"""What an engine needs to know about a call besides the cell, the data and the weights."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from ..cells import Cell

if TYPE_CHECKING:
    from ..interventions import Edits


@dataclass(frozen=True)
class RunConfig:
    num_layers: int
    bidirectional: bool
    dropout: float = 0.0            # between layers, on each layer's output but the last (training only)
    training: bool = False
    recurrent_dropout: float = 0.0  # variational: one mask on h_{t-1} per sequence, layer and direction
    zoneout: float = 0.0            # each state unit keeps its previous value with this probability
    single_step: bool = False       # one step of a cell module (LSTMCell, ...), not whole sequences
    # Interventions in engine form (lstmkit.interventions.Edits), None when the call has none.
    edits: Edits | None = field(default=None, compare=False)

    @property
    def directions(self) -> int:
        return 2 if self.bidirectional else 1


@dataclass
class Masks:
    """The random masks of one layer and direction, drawn before the recurrence so that every engine given the
    same seed uses the same ones: ``recurrent`` (B, R) scaled by 1/(1-p), and ``zoneout`` one (T, B, S) 0/1 mask
    per state (1 = keep the previous value)."""

    recurrent: Tensor | None = None
    zoneout: tuple[Tensor, ...] | None = None


def draw_masks(cell: Cell, config: RunConfig, T: int, B: int, like: Tensor) -> Masks:
    if not config.training:
        return Masks()
    masks = Masks()
    if config.recurrent_dropout > 0:
        keep = 1.0 - config.recurrent_dropout
        masks.recurrent = torch.empty(B, cell.output_size, dtype=like.dtype, device=like.device) \
            .bernoulli_(keep).div_(keep)
    if config.zoneout > 0:
        masks.zoneout = tuple(torch.empty(T, B, size, dtype=like.dtype, device=like.device)
                              .bernoulli_(config.zoneout) for size in cell.state_sizes())
    return masks
