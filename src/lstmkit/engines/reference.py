"""The reference engine: the cell's equations, one step at a time, in plain torch.

It is the spec the other engines are tested against, and it runs any :class:`lstmkit.cells.Cell`, so a new cell
gets layers, directions, packing, dropout between layers, recurrent dropout, zoneout and traces from here.
Autograd differentiates it; nothing is hand-written, which is why it is slow (one Python iteration per step).
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor

from ..cells import Cell, Weights
from ..interventions import Edit, edit_step
from ..sequences import Sequences, step_mask
from .config import Masks, RunConfig
from .layers import run_layers
from .unrolled import unrolled_steps

NAME = "reference"


def why_not(cell: Cell, config: RunConfig, x: Tensor | None = None, *, trace: bool = False) -> str | None:
    """Always None: the reference runs every cell, input and option (slowly)."""
    return None


def zoneout_mix(new: tuple[Tensor, ...], old: tuple[Tensor, ...], keep: tuple[Tensor, ...] | float):
    """Zoneout: each state unit keeps its previous value where ``keep`` (one 0/1 mask per state, training) is 1,
    or moves by the expectation ``p s + (1 - p) s~`` for a float ``keep = p`` (eval)."""
    if isinstance(keep, tuple):
        return tuple(torch.lerp(n, s, z) for n, s, z in zip(new, old, keep, strict=True))
    return tuple(torch.lerp(n, s, keep) for n, s in zip(new, old, strict=True))


def step(cell: Cell, x: Tensor, state: tuple[Tensor, ...], w: Weights,
         zoneout: tuple[Tensor, ...] | float | None = None, edits: dict[str, Edit] | None = None
         ) -> tuple[Tensor, ...]:
    """One step of a cell module: x (B, I), state (B, S) each -> the new state (zoneout as in
    :func:`zoneout_mix`, None for none; ``edits``: interventions, (1, B, S) each, as in :func:`run_direction`)."""
    return edited_step(cell, cell.project_input(x, w), state, w, zoneout, edits, 0)[0]


def edited_step(cell: Cell, xw: Tensor, state: tuple[Tensor, ...], w: Weights,
                keep: tuple[Tensor, ...] | float | None, edits: dict[str, Edit] | None, t: int):
    """Step t of the recurrence: the cell's step, zoneout's mix (``keep``: one mask per state, p, or None) and the
    interventions ``edits``. The cell edits each record where it computes it, except the states when zoneout mixes
    them or the cell's ``step`` takes no ``edit``: those are edited here, after the mix, as the carried values.
    Returns the new state and the records (states as carried)."""
    if not edits:
        new, rec = cell.step(xw, state, w)
        if keep is None:
            return new, rec
        new = zoneout_mix(new, state, keep)
        return new, _with_states(cell, rec, new)
    inner: tuple[str, ...] = ()
    if cell.takes_edit():
        inner = tuple(n for n in cell.records if keep is None or n not in cell.states)
        new, rec = cell.step(xw, state, w, edit=edit_step(edits, t, inner))
    else:
        new, rec = cell.step(xw, state, w)
    if keep is not None:
        new = zoneout_mix(new, state, keep)
    after = tuple(n for n in cell.states if n in edits and n not in inner)
    if after:
        edit = edit_step(edits, t, after)
        new = tuple(edit(name, s) for name, s in zip(cell.states, new, strict=True))
    return new, (_with_states(cell, rec, new) if keep is not None or after else rec)


def run(cell: Cell, seq: Sequences, hx: tuple[Tensor, ...], weights: list[list[Weights]], config: RunConfig,
        *, trace: bool):
    return run_layers(run_direction, cell, seq, hx, weights, config, trace)


def run_direction(cell: Cell, x: Tensor, lengths: Tensor | None, state: tuple[Tensor, ...], w: Weights,
                  masks: Masks, config: RunConfig, trace: bool, edits: dict[str, Edit] | None = None):
    """One layer in one (forward) direction. x (T, B, I) -> y (T, B, R), final state, records or None.
    ``edits``: interventions (:mod:`lstmkit.interventions`), ``{record: (keep, value)}`` (T, B, S) each, applied
    as :func:`edited_step` says."""
    if masks.recurrent is not None:
        w = Weights(**{**w.__dict__, "recurrent_mask": masks.recurrent})
    if torch.jit.is_tracing():
        with warnings.catch_warnings():             # the trace keeps T as a constant: that is the point here
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            steps = int(x.shape[0])
        x = unrolled_steps(x, steps)                                            # see unrolled_steps
    xw = cell.project_input(x, w)                                               # (T, B, G*H)
    ys, recs = [], []
    keep_p = config.zoneout if (config.zoneout > 0 and not config.training) else None
    for t in range(x.shape[0]):
        keep = tuple(z[t] for z in masks.zoneout) if masks.zoneout is not None else keep_p
        new, rec = edited_step(cell, xw[t], state, w, keep, edits, t)
        alive = step_mask(lengths, t, x)                                        # (B, 1) or None
        if alive is not None:
            new = tuple(torch.where(alive, n, s) for n, s in zip(new, state, strict=True))
            y = torch.where(alive, new[0], torch.zeros_like(new[0]))
            rec = tuple(torch.where(alive, r, torch.zeros_like(r)) for r in rec) if trace else rec
        else:
            y = new[0]
        state = new
        ys.append(y)
        if trace:
            recs.append(rec)
    records = tuple(torch.stack(r) for r in zip(*recs, strict=True)) if trace else None
    return torch.stack(ys), state, records


def _with_states(cell: Cell, rec: tuple, state: tuple[Tensor, ...]) -> tuple:
    """Records that name a state (``h``, ``c``) show the state after zoneout, the value actually carried."""
    by_name = dict(zip(cell.states, state, strict=True))
    return tuple(by_name.get(name, r) for name, r in zip(cell.records, rec, strict=True))
