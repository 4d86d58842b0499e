"""What the explorer shows: one model, the sequences it reads, how to draw them, and what its output means.

A :class:`Subject` is built either from a run folder written by ``lstmkit train`` (:func:`from_run`: the model is
rebuilt from ``config.json`` and ``model.safetensors``, the sequences are the task's held-out set) or from a model
and inputs in Python (:func:`from_model`). Everything is checked here, before a server starts: a missing or corrupt
folder, inputs the model cannot read, two subjects that do not read the same sequences.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import InputError, InputTypeError
from ..modules import Recurrent
from ..trace import Trace
from .ranking import EXPLAIN_FILE
from .ranking import check as check_ranking
from .ranking import load as load_ranking

# How each lab task's input is drawn. Symbols: the one-hot channel's letter (the task docstrings' alphabets; copy's
# blank 0 is "·" and its delimiter 9 is ":"). Pixels: intensity per step. Series: one line per input channel.
LAB_TRACKS: dict[str, dict] = {
    "temporal-order": {"kind": "symbols", "symbols": "abcdBEXY"},
    "reber": {"kind": "symbols", "symbols": "BTPSXVE"},
    "recall": {"kind": "symbols", "symbols": "ABCDEFGHabcdefgh?"},
    "copy": {"kind": "symbols", "symbols": "·12345678:"},
    "digits": {"kind": "pixels", "image_width": 8},
    "permuted-digits": {"kind": "pixels"},
    "adding": {"kind": "series", "channels": ["value", "marker"]},
    "adding-1997": {"kind": "series", "channels": ["value", "marker"]},
    "sunspots": {"kind": "series", "channels": ["sunspots / 100"]},
}
TRACK_KINDS = ("symbols", "pixels", "series", "tokens")


@dataclass
class Subject:
    """``model`` maps inputs ``(N, T, I)`` to outputs ``(N, T, O)`` (or is the recurrent module itself); ``rnn`` is
    the lstmkit module inside it whose gates are shown; ``x`` the sequences ``(N, T, I)``; ``y``/``mask`` the
    targets, when known; ``track`` how the input is drawn (see :data:`LAB_TRACKS`); ``ranking`` explain's order of
    each layer's units (:mod:`.ranking`), when known."""

    name: str
    model: nn.Module
    rnn: Recurrent
    x: Tensor
    track: dict
    y: Tensor | None = None
    mask: Tensor | None = None
    ranking: list[list[int]] | None = None
    _full_trace: Trace | None = field(default=None, repr=False)

    @property
    def records(self) -> tuple[str, ...]:
        return tuple(self.rnn.cell.records)

    @property
    def num_directions(self) -> int:
        return 2 if self.rnn.bidirectional else 1

    def check_sequence(self, seq: int) -> int:
        if isinstance(seq, bool) or not isinstance(seq, int):
            raise InputTypeError(f"`seq` must be an int, got {type(seq).__name__}")
        if not 0 <= seq < len(self.x):
            raise InputError(f"`seq` must be in [0, {len(self.x) - 1}] ({len(self.x)} sequences), got {seq}")
        return seq

    def check_layer_direction(self, layer: int, direction: int) -> None:
        if not 0 <= layer < self.rnn.num_layers:
            raise InputError(f"`layer` must be in [0, {self.rnn.num_layers - 1}], got {layer}")
        if not 0 <= direction < self.num_directions:
            raise InputError(f"`direction` must be in [0, {self.num_directions - 1}], got {direction}")

    def check_record(self, name: object) -> str:
        if not isinstance(name, str) or name not in self.records:
            raise InputError(f"`record` must be one of {', '.join(self.records)} (the {self.kind} cell's records), "
                             f"got {name!r}")
        return name

    @property
    def kind(self) -> str:
        return type(self.rnn).__name__

    # -- running the model --------------------------------------------------------------------------------------

    def _rnn_input(self, x: Tensor) -> Tensor:
        return x if self.rnn.batch_first else x.transpose(0, 1)

    def _batch_first(self, t: Tensor) -> Tensor:
        return t if self.rnn.batch_first else t.transpose(0, 1)

    @torch.no_grad()
    def run(self, x: Tensor, interventions: list | None = None) -> tuple[Trace, Tensor]:
        """The trace of ``rnn`` and the model's output ``(N, T, O)`` for ``x`` (N, T, I), with ``interventions``
        (the :mod:`lstmkit.interventions` API) applied inside the recurrence when given."""
        kwargs = {"interventions": interventions} if interventions else {}
        trace = self.rnn.trace(self._rnn_input(x), **kwargs)
        if self.model is self.rnn:
            assert isinstance(trace.output, Tensor)  # from a padded tensor input, never packed
            out = self._batch_first(trace.output)  # (N, T, D*H)
        elif interventions:
            with self.rnn.intervene(*interventions):
                out = self.model(x)
        else:
            out = self.model(x)
        return trace, out

    def record(self, trace: Trace, layer: int, direction: int, name: str) -> Tensor:
        """One record of ``trace`` as ``(N, T, S)``."""
        return self._batch_first(getattr(trace[layer, direction], name))

    def full_trace(self) -> Trace:
        """The trace over every sequence (computed once): what select-and-match searches and ablation averages."""
        if self._full_trace is None:
            self._full_trace, _ = self.run(self.x)
        return self._full_trace

    # -- what the output means, per step -------------------------------------------------------------------------

    def readout(self, o: Tensor, seq: int) -> dict | None:
        """The model's output ``o`` (T, O) for sequence ``seq`` as one number per step, chosen by the targets' form: the
        probability of the target class (a class read at the last step), the loss per step (a class or a set of
        symbols at every step), or the prediction itself (a number read at the last step, a forecast)."""
        if self.model is self.rnn:
            return None
        y = None if self.y is None else self.y[seq]
        mask = None if self.mask is None else self.mask[seq]
        if y is not None and not y.is_floating_point() and y.dim() == 0:
            p = F.softmax(o.float(), -1)[:, y]  # (T,)
            pred = int(o[-1].argmax())
            return {"label": f"p(target class {int(y)})", "values": p.tolist(), "range": [0.0, 1.0],
                    "summary": f"target class {int(y)}; predicted at the last step: {pred} "
                               f"(p = {float(F.softmax(o[-1].float(), -1)[pred]):.3f})"}
        if y is not None and not y.is_floating_point() and y.dim() == 1:
            loss = F.cross_entropy(o.float(), y, reduction="none")  # (T,)
            return {"label": "cross-entropy per step (nats)", "values": loss.tolist(), "range": None,
                    "summary": f"mean cross-entropy {float(loss.mean()):.4f} nats"}
        if y is not None and mask is not None and y.shape == o.shape:
            loss = F.binary_cross_entropy_with_logits(o.float(), y.float(), reduction="none").sum(-1) * mask
            return {"label": "loss per step (BCE, masked)", "values": loss.tolist(), "range": None,
                    "summary": f"mean loss over {int(mask.sum())} steps {float(loss.sum() / mask.sum()):.4f}"}
        values = o[:, 0].float()
        summary = f"output[0] at the last step {float(values[-1]):.4f}"
        if y is not None and y.is_floating_point():
            summary += f"; target {float(y.reshape(-1)[0]):.4f}"
        return {"label": "output[0] per step", "values": values.tolist(), "range": None, "summary": summary}

    def ranking_of(self, layer: int, direction: int) -> list[int] | None:
        """Explain's order of the units of ``layer`` (it ranks the forward direction only), or None."""
        return self.ranking[layer] if self.ranking is not None and direction == 0 else None

    def describe(self) -> dict:
        r = self.rnn
        return {"name": self.name, "kind": self.kind, "records": list(self.records), "layers": r.num_layers,
                "directions": self.num_directions, "hidden": r.hidden_size, "sequences": len(self.x),
                "steps": self.x.shape[1], "track": self.track, "ranking": self.ranking is not None}


# -- building subjects -------------------------------------------------------------------------------------------

def from_model(model: nn.Module, inputs, *, targets: Tensor | None = None, symbols: str | None = None,
               tokens: list | None = None, pixels: bool = False, name: str | None = None,
               ranking: list | None = None) -> Subject:
    """A subject from a model and its inputs ``(N, T, I)`` (N sequences, batch first whatever the module's
    ``batch_first``; one ``(T, I)`` sequence is taken as N = 1). ``model`` is an lstmkit LSTM/GRU/RNN, or a module
    whose ``rnn`` attribute is one and which feeds its input straight to it (like the lab's ``SequenceModel``).
    ``ranking``: an order of the units (see :func:`.ranking.check`), offered as the page's "explain ranking"."""
    rnn = _find_rnn(model)
    ranked = None if ranking is None else check_ranking(ranking, rnn)
    if not isinstance(inputs, Tensor):
        raise InputTypeError(f"`inputs` must be a float tensor (N, T, I), got {type(inputs).__name__}")
    x = inputs.detach()
    if x.dim() == 2:
        x = x.unsqueeze(0)
    if x.dim() != 3 or not x.is_floating_point():
        raise InputError(f"`inputs` must be a float tensor (N, T, I) or (T, I), got {x.dtype} of shape "
                         f"{tuple(inputs.shape)}")
    if x.shape[-1] != rnn.input_size:
        raise InputError(f"`inputs` has {x.shape[-1]} features per step but the model's {type(rnn).__name__} reads "
                         f"input_size={rnn.input_size}: the model and the inputs do not match")
    track = _track(x, symbols=symbols, tokens=tokens, pixels=pixels)
    if targets is not None and (not isinstance(targets, Tensor) or len(targets) != len(x)):
        raise InputError(f"`targets` must be a tensor with one row per sequence ({len(x)}), got "
                         f"{type(targets).__name__} of length {len(targets) if hasattr(targets, '__len__') else '?'}")
    return Subject(name or type(model).__name__, model.eval(), rnn, x, track, targets, ranking=ranked)


def from_run(run_dir: str | Path, *, max_sequences: int | None = None, explain: str | Path | None = None) -> Subject:
    """A subject from a run folder: the trained model, the task's held-out set, the task's input track, and the
    unit ranking of the explain result at ``explain`` (default: ``RUN/explain/explain.json`` when it exists). Raises
    a CheckpointError (a ValueError) naming the folder and what is wrong when it is missing or corrupt, and an
    InputError when the explain result does not match the model."""
    from ..lab.checkpoint import CheckpointError
    from ..lab.runs import load_run

    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise CheckpointError(f"run folder {run_dir} does not exist (expected a folder written by lstmkit train)")
    config, task, model = load_run(run_dir)
    test = task.test_set()
    if test.x.shape[-1] != model.rnn.input_size:  # the weights fit config.json but not the task it names
        raise CheckpointError(f"the model in {run_dir} reads {model.rnn.input_size} inputs per step but task "
                              f"{config.task!r} gives {test.x.shape[-1]}: the model and the task do not match")
    if explain is None and (run_dir / EXPLAIN_FILE).is_file():
        explain = run_dir / EXPLAIN_FILE
    ranked = None if explain is None else load_ranking(explain, model.rnn)
    n = len(test) if max_sequences is None else min(max_sequences, len(test))
    test = test.slice(0, n)
    return Subject(f"{run_dir.name}: {config.model.describe()} on {config.task} (T={task.seq_len}, seed "
                   f"{config.seed})", model.eval(), model.rnn, test.x, dict(LAB_TRACKS[config.task]), test.y,
                   test.mask, ranking=ranked)


def check_comparable(a: Subject, b: Subject) -> None:
    """Two subjects compared side by side must read the same sequences."""
    if a.x.shape != b.x.shape or not torch.equal(a.x, b.x):
        raise InputError(f"cannot compare {a.name!r} with {b.name!r}: they do not read the same sequences "
                         f"(inputs {tuple(a.x.shape)} and {tuple(b.x.shape)}); compare two runs of the same task "
                         "and length")


def _find_rnn(model) -> Recurrent:
    if isinstance(model, Recurrent):
        return model
    rnn = getattr(model, "rnn", None)
    if isinstance(model, nn.Module) and isinstance(rnn, Recurrent):
        return rnn
    raise InputTypeError(f"`model` must be an lstmkit LSTM, GRU or RNN, or a module whose `rnn` attribute is one, "
                         f"got {type(model).__name__}")


def _track(x: Tensor, *, symbols, tokens, pixels) -> dict:
    N, T, I = x.shape
    if sum(v is not None and v is not False for v in (symbols, tokens, pixels)) > 1:
        raise InputError("give at most one of `symbols`, `tokens` and `pixels`")
    if tokens is not None:
        if len(tokens) != N or any(len(row) != T for row in tokens):
            raise InputError(f"`tokens` must hold one list of {T} strings per sequence ({N} sequences)")
        return {"kind": "tokens", "tokens": [[str(t) for t in row] for row in tokens]}
    if symbols is not None:
        if len(symbols) != I:
            raise InputError(f"`symbols` must name each of the {I} one-hot input channels, got {len(symbols)} "
                             f"({symbols!r})")
        return {"kind": "symbols", "symbols": list(symbols)}
    if pixels:
        if I != 1:
            raise InputError(f"`pixels` draws one intensity per step, but the inputs have I={I} features")
        return {"kind": "pixels"}
    return {"kind": "series", "channels": [f"x[{k}]" for k in range(I)]}
