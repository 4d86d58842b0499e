r"""Interventions: "what if" on the open cell. Set, scale, shift, ablate or patch a recorded quantity of the
recurrence (an LSTM's ``i, f, g, o, c, h``; a GRU's ``r, z, n, h``; an RNN's ``a, h``; a custom cell's records)
*inside* the recurrence, so the changed value feeds every later step.

    >>> import torch, lstmkit
    >>> lstm = lstmkit.LSTM(3, 8)
    >>> x = torch.randn(20, 2, 3)
    >>> tr = lstm.trace(x, interventions=[lstmkit.clamp("f", 0.0, units=[1], steps=slice(5, 10))])
    >>> tr[0, 0].f[5:10, :, 1].abs().max().item()        # the record shows the intervened value
    0.0

Each constructor returns a frozen :class:`Intervention`; where it acts is chosen by ``layer``, ``direction``,
``units`` (features of the record), ``steps`` (in the caller's time order, also for the reverse direction: step
``t`` is index ``t`` of ``trace[layer, 1]``) and ``rows`` (batch rows in the caller's order). Each of ``units``,
``steps``, ``rows`` is None (all), an int, a slice, a sequence of ints or a bool mask.

=========  ====================================  ===================================================================
kind       the selected values become            gradient to the value replaced
=========  ====================================  ===================================================================
clamp      ``value``                             none
scale      ``factor * v``                        times ``factor``
add        ``v + delta``                         passed through
ablate     0, or the per-unit mean of a trace    none
patch      another run's value at (t, b, j)      none (activation patching: clean values into a corrupted run)
=========  ====================================  ===================================================================

Several interventions apply in the order given (on the same quantity they compose). Gates are the values
``trace`` records (after the activation); ``c`` and ``h`` are the carried state, as ``trace`` records it: with
zoneout the edit acts after zoneout's mix (so the ``h`` of the same step, which zoneout computes from the un-mixed
``c'``, does not see a ``c`` edit); without, ``c`` is edited where the cell computes it, before ``h = o ⊙ tanh(c)``.
``h`` is the projected output with ``proj_size``. Operands (values, factors, sources, means) are constants: no
gradient reaches them.

Engine form: each edited (layer, direction, record) becomes one dense affine map ``v' = keep ⊙ v + value`` with
``keep`` and ``value`` of shape (T, B, S) in engine order (time-major, packed batches sorted longest first, the
reverse direction's steps reversed within each length): clamp is (0, c), scale (s, 0), add (1, d), ablate (0, 0
or the mean), patch (0, source); a composition of affine maps is affine.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
from torch import Tensor

from .errors import InputError, InputTypeError
from .sequences import InputForm, Sequences, reverse_within
from .trace import Trace

KINDS = ("clamp", "scale", "add", "ablate", "patch")
Index = int | slice | Sequence[int] | Sequence[bool] | Tensor | None


@dataclass(frozen=True, eq=False)
class Intervention:
    """One intervention (see the module docstring); made by :func:`clamp`, :func:`scale`, :func:`add`,
    :func:`ablate` or :func:`patch`. ``operand`` is the value, factor or delta (float or tensor over the selected
    units), the mean trace of an ablation (or None for zero), or the source of a patch (a Trace or a tensor)."""

    kind: str
    name: str
    operand: float | Tensor | Trace | None = None
    layer: int = 0
    direction: int = 0
    units: Index = field(default=None, repr=False)
    steps: Index = field(default=None, repr=False)
    rows: Index = field(default=None, repr=False)


def _make(kind: str, name, operand, layer, direction, units, steps, rows) -> Intervention:
    if not isinstance(name, str):
        raise InputTypeError(f"the record name of {kind}() must be a str such as 'f' or 'c', got "
                             f"{type(name).__name__}")
    for arg, v in (("layer", layer), ("direction", direction)):
        if isinstance(v, bool) or not isinstance(v, int):
            raise InputTypeError(f"`{arg}` of {kind}() must be an int, got {type(v).__name__}")
    return Intervention(kind, name, operand, layer, direction, units, steps, rows)


def clamp(name: str, value: float | Tensor, *, layer: int = 0, direction: int = 0, units: Index = None,
          steps: Index = None, rows: Index = None) -> Intervention:
    """Set the selected values of record ``name`` to ``value`` (a float, or a tensor over the selected units)."""
    return _make("clamp", name, _number("value", "clamp", value), layer, direction, units, steps, rows)


def scale(name: str, factor: float | Tensor, *, layer: int = 0, direction: int = 0, units: Index = None,
          steps: Index = None, rows: Index = None) -> Intervention:
    """Multiply the selected values of record ``name`` by ``factor``."""
    return _make("scale", name, _number("factor", "scale", factor), layer, direction, units, steps, rows)


def add(name: str, delta: float | Tensor, *, layer: int = 0, direction: int = 0, units: Index = None,
        steps: Index = None, rows: Index = None) -> Intervention:
    """Add ``delta`` to the selected values of record ``name``."""
    return _make("add", name, _number("delta", "add", delta), layer, direction, units, steps, rows)


def ablate(name: str, *, mean: Trace | None = None, layer: int = 0, direction: int = 0, units: Index = None,
           steps: Index = None, rows: Index = None) -> Intervention:
    """Zero-ablate the selected values of record ``name``, or with ``mean`` (a :class:`lstmkit.Trace` of the same
    model, e.g. over a reference set) set them to the per-unit mean of that trace's record over its steps and
    rows (valid steps only for packed input)."""
    if mean is not None and not isinstance(mean, Trace):
        raise InputTypeError(f"`mean` of ablate() must be None (zero-ablation) or an lstmkit.Trace, got "
                             f"{type(mean).__name__}")
    return _make("ablate", name, mean, layer, direction, units, steps, rows)


def patch(name: str, source: Trace | Tensor, *, layer: int = 0, direction: int = 0, units: Index = None,
          steps: Index = None, rows: Index = None) -> Intervention:
    """Activation patching: set the selected values of record ``name`` to ``source``'s at the same (step, row,
    unit). ``source`` is a :class:`lstmkit.Trace` of the same model on an input of the same shape (e.g. the clean
    run), or a tensor laid out like the record (as ``trace[layer, direction].<name>`` is)."""
    if not isinstance(source, Trace | Tensor):
        raise InputTypeError(f"`source` of patch() must be an lstmkit.Trace or a Tensor, got "
                             f"{type(source).__name__}")
    return _make("patch", name, source, layer, direction, units, steps, rows)


def _number(arg: str, kind: str, v) -> float | Tensor:
    if isinstance(v, Tensor):
        if v.is_complex() or not v.is_floating_point():
            raise InputTypeError(f"`{arg}` of {kind}() must be a float or a floating-point tensor, got a "
                                 f"{v.dtype} tensor")
        return v.detach()
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise InputTypeError(f"`{arg}` of {kind}() must be a float or a tensor, got {type(v).__name__}")
    return float(v)


# -- from interventions to engine edits -------------------------------------------------------------------------

Edit = tuple[Tensor, Tensor]              # (keep, value), each (T, B, S): v' = keep * v + value


@dataclass
class Edits:
    """The engine form of a call's interventions: ``edits[layer, direction]`` maps record names to their affine
    edit ``(keep, value)`` (T, B, S) in engine order, or is empty. Engines read it through
    :class:`lstmkit.engines.RunConfig`."""

    maps: dict[tuple[int, int], dict[str, Edit]]

    def __getitem__(self, key: tuple[int, int]) -> dict[str, Edit]:
        return self.maps.get(key, {})

    def __bool__(self) -> bool:
        return any(self.maps.values())


@dataclass(frozen=True)
class Model:
    """What a call's interventions are checked against: the cell's records and their sizes, layers, directions,
    the caller's input form and the batch."""

    records: tuple[str, ...]
    editable: tuple[str, ...]                   # all records, or only the states for a cell without `edit`
    sizes: dict[str, int]
    num_layers: int
    directions: int
    batch_first: bool


def check(iv: Intervention, k: int, model: Model) -> str:
    """Checks what can be checked without the call (type, record name, layer, direction); returns how errors
    name the intervention."""
    if not isinstance(iv, Intervention):
        raise InputTypeError(f"interventions[{k}] must be an lstmkit intervention (lstmkit.clamp, scale, add, "
                             f"ablate, patch), got {type(iv).__name__}")
    where = f"interventions[{k}] ({iv.kind} {iv.name!r})"
    if iv.name not in model.records:
        raise InputError(f"{where}: the cell has no record {iv.name!r}; its records are "
                         f"{', '.join(model.records)}")
    if iv.name not in model.editable:
        raise InputError(f"{where}: this cell's step() takes no `edit`, so only its states "
                         f"({', '.join(model.editable)}) can be intervened on; give step() an `edit` argument "
                         "(see lstmkit.Cell.step) to reach its other records")
    if not -model.num_layers <= iv.layer < model.num_layers:
        raise InputError(f"{where}: layer={iv.layer} is out of range: the module has {model.num_layers} "
                         f"layer(s), 0 to {model.num_layers - 1}")
    if not -model.directions <= iv.direction < model.directions:
        raise InputError(f"{where}: direction={iv.direction} is out of range: the module has "
                         f"{model.directions} direction(s)" + ("" if model.directions == 2 else
                                                               " (direction 1 needs bidirectional=True)"))
    return where


def as_list(interventions, arg: str = "interventions") -> list[Intervention]:
    """A call's ``interventions`` argument as a list: None, one intervention, or a sequence of them."""
    if interventions is None:
        return []
    if isinstance(interventions, Intervention):
        return [interventions]
    if isinstance(interventions, Tensor | str) or not isinstance(interventions, Sequence):
        raise InputTypeError(f"`{arg}` must be None, an intervention or a list of them (lstmkit.clamp, scale, "
                             f"add, ablate, patch), got {type(interventions).__name__}")
    return list(interventions)


def compile_edits(interventions: Sequence[Intervention], model: Model, form: InputForm, seq: Sequences,
                  dtype: torch.dtype) -> Edits:
    """Checks every intervention against the model and the call, then builds the dense edits in ``dtype``
    (the engines' accumulation dtype). Raises InputError/InputTypeError before any work."""
    T, B = seq.steps, seq.batch
    device = seq.values().device
    lengths = seq.lengths()                                     # sorted order, engine form
    plan: dict[tuple[int, int, str], list[tuple[Intervention, tuple, Tensor | float, Tensor | float]]] = {}
    for k, iv in enumerate(interventions):
        where = check(iv, k, model)
        layer, d = iv.layer % model.num_layers, iv.direction % model.directions
        S = model.sizes[iv.name]
        t = _index(iv.steps, T, "steps", where, f"the input has {T} steps")
        if form.unbatched and iv.rows is not None:
            raise InputError(f"{where}: `rows` must be None for unbatched input (it has no batch dimension), got "
                             f"{iv.rows!r}")
        b = _index(iv.rows, B, "rows", where, f"the batch has {B} rows")
        u = _index(iv.units, S, "units", where, f"record {iv.name!r} has {S} features")
        ix = _block(t, b, u)
        k_op, v_op = _operator(iv, where, model, form, u, ix, (T, B, S), dtype, device)
        plan.setdefault((layer, d, iv.name), []).append((iv, ix, k_op, v_op))

    maps: dict[tuple[int, int], dict[str, Edit]] = {}
    for (layer, d, name), ops in plan.items():
        S = model.sizes[name]
        keep = torch.ones(T, B, S, dtype=dtype, device=device)
        value = torch.zeros(T, B, S, dtype=dtype, device=device)
        for _, ix, k_op, v_op in ops:                          # v'' = k (keep v + value) + v_op = (k keep) v + ...
            if all(isinstance(i, slice) for i in ix):           # a view: changed in place, trivial steps skipped
                if not _is(k_op, 1.0):
                    keep[ix].mul_(k_op)
                    value[ix].mul_(k_op)
                if not _is(v_op, 0.0):
                    value[ix].add_(v_op)
            else:
                keep[ix] = keep[ix] * k_op
                value[ix] = value[ix] * k_op + v_op
        keep, value = (_engine_order(e, form, lengths, d) for e in (keep, value))
        maps.setdefault((layer, d), {})[name] = (keep, value)
    return Edits(maps)


def _operator(iv: Intervention, where: str, model: Model, form: InputForm, u: Tensor, ix: tuple,
              shape: tuple[int, int, int], dtype: torch.dtype, device) -> tuple[Tensor | float, Tensor | float]:
    """(k, v) of the intervention's affine map on the selected block, v broadcastable to it."""
    if iv.kind in ("clamp", "scale", "add"):
        arg = {"clamp": "value", "scale": "factor", "add": "delta"}[iv.kind]
        assert isinstance(iv.operand, float | Tensor)                   # (the constructors' check)
        operand = _over_units(iv.operand, arg, where, len(u), dtype, device)
        return {"clamp": (0.0, operand), "scale": (operand, 0.0), "add": (1.0, operand)}[iv.kind]
    if iv.kind == "ablate":
        if iv.operand is None:
            return 0.0, 0.0
        assert isinstance(iv.operand, Trace)
        rec = _trace_record(iv.operand, iv, where, model, "mean")
        return 0.0, _unit_mean(rec, iv.operand, model.batch_first).to(dtype=dtype, device=device)[u]
    assert iv.kind == "patch"
    src = iv.operand
    if isinstance(src, Trace):
        src = _trace_record(src, iv, where, model, "source")
    assert isinstance(src, Tensor)
    T, B, S = shape
    expected = (T, S) if form.unbatched else ((B, T, S) if model.batch_first else (T, B, S))
    if tuple(src.shape) != expected:
        layout = "(T, S)" if form.unbatched else ("(B, T, S)" if model.batch_first else "(T, B, S)")
        raise InputError(f"{where}: the patch source must be laid out like record {iv.name!r} of this call, "
                         f"{layout} = {expected}, got {tuple(src.shape)} (patch from a run on an input of the same "
                         "shape)")
    src = src.detach().to(dtype=dtype, device=device)
    tm = src.unsqueeze(1) if form.unbatched else (src.transpose(0, 1) if model.batch_first else src)
    return 0.0, tm[ix]


def _trace_record(tr: Trace, iv: Intervention, where: str, model: Model, what: str) -> Tensor:
    """Record ``iv.name`` of ``tr`` at the intervention's layer and direction, after checking ``tr`` comes from a
    model like this one."""
    fields = getattr(tr.records[0][0], "_fields", None) if tr.records and tr.records[0] else None
    if (fields != model.records or tr.num_layers != model.num_layers
            or tr.num_directions != model.directions):
        raise InputError(f"{where}: the {what} trace comes from another model: it has records {fields}, "
                         f"{tr.num_layers} layer(s), {tr.num_directions} direction(s); this module has "
                         f"{model.records}, {model.num_layers}, {model.directions}")
    rec = getattr(tr[iv.layer, iv.direction], iv.name)
    if rec.shape[-1] != model.sizes[iv.name]:
        raise InputError(f"{where}: the {what} trace's record {iv.name!r} has {rec.shape[-1]} features, this "
                         f"module's {model.sizes[iv.name]}: it comes from another model")
    return rec


def _unit_mean(rec: Tensor, tr: Trace, batch_first: bool) -> Tensor:
    """(S,) mean of a record over its steps and rows; only valid steps for a packed trace."""
    if rec.dim() == 2:                                          # unbatched (T, S)
        return rec.detach().mean(0)
    tm = rec.detach().transpose(0, 1) if batch_first else rec.detach()      # (T, B, S)
    if tr.lengths is None:
        return tm.mean((0, 1))
    valid = (torch.arange(tm.shape[0]).unsqueeze(1) < tr.lengths.unsqueeze(0)).to(tm.device)   # (T, B)
    return (tm * valid.unsqueeze(-1)).sum((0, 1)) / valid.sum().clamp(min=1)


def _over_units(v: float | Tensor, arg: str, where: str, n: int, dtype, device) -> Tensor | float:
    if isinstance(v, Tensor):
        if v.dim() > 1 or (v.dim() == 1 and v.shape[0] not in (1, n)):
            raise InputError(f"{where}: `{arg}` must be a float, a 0-d tensor or a 1-d tensor over the {n} "
                             f"selected unit(s), got shape {tuple(v.shape)}")
        return v.to(dtype=dtype, device=device)
    return v


def _index(spec: Index, size: int, arg: str, where: str, bound: str) -> Tensor:
    """An int64 index tensor over range(size) for None (all), an int, a slice, a sequence or a bool mask."""
    if spec is None:
        return torch.arange(size)
    if isinstance(spec, slice):
        return torch.arange(size)[spec]
    if isinstance(spec, bool):
        raise InputTypeError(f"{where}: `{arg}` must be None, an int, a slice, a sequence of ints or a bool mask, "
                             "got a bool")
    if isinstance(spec, int):
        items = torch.tensor([spec])
    else:
        try:
            items = torch.as_tensor(spec) if not isinstance(spec, Tensor) else spec.detach().cpu()
        except (TypeError, ValueError, RuntimeError):
            raise InputTypeError(f"{where}: `{arg}` must be None, an int, a slice, a sequence of ints or a bool "
                                 f"mask, got {type(spec).__name__}") from None
        if items.numel() == 0 and items.dim() == 1:
            return torch.zeros(0, dtype=torch.long)                  # an empty selection: changes nothing
        if items.dtype == torch.bool:
            if items.shape != (size,):
                raise InputError(f"{where}: a bool mask `{arg}` must have {size} entries ({bound}), got shape "
                                 f"{tuple(items.shape)}")
            return items.nonzero().flatten()
        if items.dim() != 1 or items.is_floating_point() or items.is_complex():
            raise InputTypeError(f"{where}: `{arg}` must be None, an int, a slice, a 1-d sequence of ints or a "
                                 f"bool mask, got {type(spec).__name__} of {items.dtype} shape "
                                 f"{tuple(items.shape)}")
    bad = items[(items < -size) | (items >= size)]
    if len(bad):
        raise InputError(f"{where}: `{arg}` {bad[0].item()} is out of range: {bound} (indices -{size} to "
                         f"{size - 1})")
    return items.long() % max(size, 1)


def _is(op: Tensor | float, number: float) -> bool:
    """Whether an operand is the plain float ``number`` (so multiplying by it or adding it changes nothing)."""
    return isinstance(op, float) and op == number


def _block(t: Tensor, b: Tensor, u: Tensor) -> tuple:
    """The index of the selected (steps, rows, units) block of a (T, B, S) tensor: basic slices where each index is
    a progression (a view, cheap to change in place: the common case), else broadcast index tensors."""
    sl = tuple(_as_slice(i) for i in (t, b, u))
    if all(isinstance(i, slice) for i in sl):
        return sl
    return t.view(-1, 1, 1), b.view(1, -1, 1), u.view(1, 1, -1)


def _as_slice(i: Tensor) -> slice | None:
    """``i`` (sorted ascending with a constant positive step) as a slice, else None."""
    if len(i) == 0:
        return slice(0, 0)
    first, last = int(i[0]), int(i[-1])
    if len(i) == 1:
        return slice(first, first + 1)
    step = int(i[1]) - first
    if step <= 0 or (last - first) != step * (len(i) - 1) or not torch.equal(i, torch.arange(first, last + 1, step)):
        return None
    return slice(first, last + 1, step)


def _engine_order(e: Tensor, form: InputForm, lengths: Tensor | None, direction: int) -> Tensor:
    """A (T, B, S) edit in the caller's time-major batch order -> engine order (sorted batch for packed input,
    steps reversed within each length for the reverse direction), contiguous."""
    if form.packed is not None and form.packed.sorted_indices is not None:
        e = e.index_select(1, form.packed.sorted_indices.to(e.device))
    if direction == 1:
        e = reverse_within(e, lengths)
    return e.contiguous()


class Intervenable:
    """What a module needs to take interventions in ``with module.intervene(...)`` blocks; the module supplies
    ``_intervention_model()``."""

    def _intervention_model(self) -> Model:
        raise NotImplementedError

    @contextmanager
    def intervene(self, *interventions: Intervention) -> Iterator:
        """Applies ``interventions`` to every call (forward and trace) inside the ``with`` block::

            with lstm.intervene(lstmkit.clamp("f", 1.0), lstmkit.ablate("c", units=[3])):
                y, _ = lstm(x)

        Blocks nest (the outer block's interventions apply first); a call's own ``interventions`` apply after."""
        model = self._intervention_model()
        for k, i in enumerate(interventions):
            check(i, k, model)
        before = self._active_interventions()
        self._interventions = (*before, *interventions)
        try:
            yield self
        finally:
            self._interventions = before

    def _active_interventions(self) -> tuple[Intervention, ...]:
        return getattr(self, "_interventions", ())          # (absent on a module pickled before interventions)


def edit_step(edits: dict[str, Edit], t: int, names: Sequence[str] | None = None):
    """The ``edit(name, v)`` callable a cell's ``step`` calls at step ``t``: ``keep[t] * v + value[t]`` for the
    records in ``edits`` (restricted to ``names`` when given), ``v`` unchanged otherwise."""

    def edit(name: str, v: Tensor) -> Tensor:
        e = edits.get(name)
        if e is None or (names is not None and name not in names):
            return v
        keep, value = e[0][t], e[1][t]
        if keep.dtype != v.dtype:
            keep, value = keep.to(v.dtype), value.to(v.dtype)
        return torch.addcmul(value, v, keep)

    return edit
