"""The loop every step-by-step engine shares: layers, directions, dropout between layers, final states.

An engine supplies ``direction(cell, x, lengths, state, w, masks, config, trace, edits)``, which runs one layer in
one (forward) direction over a time-major batch ``x`` (T, B, I) and returns ``(y (T, B, R), final state, records
or None)``; ``edits`` are the direction's interventions (``{record: (keep, value)}``, (T, B, S) each in the order
the direction runs its steps; empty for none). Reverse directions are forward ones on steps reversed within each
sequence's length.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence

from ..cells import Cell, Weights
from ..sequences import Sequences, reverse_within
from .config import RunConfig, draw_masks


def run_layers(direction: Callable, cell: Cell, seq: Sequences, hx: tuple[Tensor, ...], weights: list[list[Weights]],
               config: RunConfig, trace: bool):
    x = seq.time_major()                                                        # (T, B, I)
    lengths = seq.lengths()                                                     # (B,) or None
    D = config.directions
    final: list[list[Any]] = [[None] * (config.num_layers * D) for _ in cell.states]
    records = []
    edits = config.edits
    for layer in range(config.num_layers):
        outputs, layer_records = [], []
        for d in range(D):
            index = layer * D + d
            s0 = tuple(s[index] for s in hx)                                    # (B, S) each
            masks = draw_masks(cell, config, x.shape[0], x.shape[1], x)
            xd = x if d == 0 else reverse_within(x, lengths)
            y, sn, rec = direction(cell, xd, lengths, s0, weights[layer][d], masks, config, trace,
                                   edits[layer, d] if edits is not None else {})
            if d == 1:
                y = reverse_within(y, lengths)
                rec = rec and tuple(reverse_within(r, lengths) for r in rec)
            outputs.append(y)
            layer_records.append(rec)
            for k, s in enumerate(sn):
                final[k][index] = s
        x = outputs[0] if D == 1 else torch.cat(outputs, dim=-1)               # (T, B, D*R)
        if config.dropout > 0 and config.training and layer < config.num_layers - 1:
            x = _dropout_between_layers(x, lengths, config.dropout)
        records.append(layer_records)
    state = tuple(torch.stack(s) for s in final)                                # (L*D, B, S) each
    return seq.like(x), state, records if trace else None


def _dropout_between_layers(x: Tensor, lengths: Tensor | None, p: float) -> Tensor:
    """Dropout on a layer's output (T, B, D*R). torch's kernels drop out a packed batch's data, rows in packed
    order, so for packed input the mask is drawn over those same rows here: the same seed gives the same mask on
    every engine and for every input form."""
    if lengths is None:
        return F.dropout(x, p, training=True)
    packed = pack_padded_sequence(x, lengths)                                   # lengths: longest first
    dropped = PackedSequence(F.dropout(packed.data, p, training=True), packed.batch_sizes)
    return pad_packed_sequence(dropped, total_length=x.shape[0])[0]
