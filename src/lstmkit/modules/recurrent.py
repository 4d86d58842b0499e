"""``Recurrent``: any cell over whole sequences, with torch.nn.LSTM/GRU/RNN's constructor, parameters and call.

It owns what every recurrent layer shares: the parameters (named and ordered as torch.nn names and orders them,
so a ``state_dict`` moves both ways), torch's initialisation, the input forms (batched, unbatched, batch_first,
``PackedSequence``, initial states), the argument checks and the choice of engine. The math of a step lives in
the cell (``lstmkit.cells``); the loop over steps, layers and directions in the engines (``lstmkit.engines``).
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from collections.abc import Callable

import torch
from torch import Tensor, nn

from .. import _checks
from .. import interventions as iv
from ..cells import Cell, Weights
from ..engines import RunConfig, check_backend, choose
from ..errors import InputError, InputTypeError
from ..onnx import mode as onnx_mode
from ..sequences import InputForm, Sequences
from ..trace import Trace, record_type
from .fx import is_proxy, leaf_call


class Recurrent(iv.Intervenable, nn.Module):
    """Runs ``cell`` (a :class:`lstmkit.cells.Cell` class, called as ``cell(hidden_size, proj_size)``) over
    sequences, with torch.nn.RNNBase's constructor arguments plus:

    - ``backend``: ``"auto"`` (the fastest engine that computes exactly this configuration), ``"torch"``
      (torch's fused kernel; only for the cells torch has), ``"fused"`` (lstmkit's compiled CPU engine; LSTM
      cells, every variant) or ``"reference"`` (the per-step loop of the cell's equations, which every engine
      is tested against).
    - ``recurrent_dropout``: variational dropout on ``h_{t-1}`` inside the recurrence, one mask per sequence,
      layer and direction (Gal & Ghahramani 2016); training mode only.
    - ``zoneout``: each unit of each state keeps its previous value with this probability (Krueger et al.
      2016): ``s_t = z ⊙ s_{t-1} + (1 − z) ⊙ s̃_t`` with ``z ~ Bernoulli(p)`` in training and the expectation
      ``p s_{t-1} + (1 − p) s̃_t`` in eval.

    ``forward`` and ``trace`` take ``interventions=``, and ``with module.intervene(...)`` applies some to every
    call in a block (:mod:`lstmkit.interventions`).
    """

    def __init__(self, cell: Callable[[int, int], Cell], input_size: int, hidden_size: int, num_layers: int = 1,
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 proj_size: int = 0, device=None, dtype=None, *, backend: str = "auto",
                 recurrent_dropout: float = 0.0, zoneout: float = 0.0):
        super().__init__()
        self.input_size = _checks.positive_int("input_size", input_size)
        self.hidden_size = _checks.positive_int("hidden_size", hidden_size)
        self.num_layers = _checks.positive_int("num_layers", num_layers)
        self.bias = _checks.flag("bias", bias)
        self.batch_first = _checks.flag("batch_first", batch_first)
        self.dropout = _checks.probability("dropout", dropout, upper_inclusive=True)
        self.bidirectional = _checks.flag("bidirectional", bidirectional)
        self.recurrent_dropout = _checks.probability("recurrent_dropout", recurrent_dropout, upper_inclusive=False)
        self.zoneout = _checks.probability("zoneout", zoneout, upper_inclusive=False)
        if isinstance(proj_size, bool) or not isinstance(proj_size, int):
            raise InputTypeError(f"`proj_size` must be an int, got {type(proj_size).__name__} ({proj_size!r})")
        if proj_size < 0:
            raise InputError(f"`proj_size` must be 0 (no projection) or positive, got {proj_size}")
        if proj_size >= hidden_size:
            raise InputError(f"`proj_size` must be smaller than hidden_size={hidden_size}, got {proj_size}")
        if self.dropout > 0 and self.num_layers == 1:
            warnings.warn("dropout acts between layers, so with num_layers=1 it does nothing "
                          f"(dropout={self.dropout}); for dropout inside the recurrence use recurrent_dropout",
                          stacklevel=3)
        self.proj_size = proj_size
        self.cell = cell(self.hidden_size, proj_size)
        if proj_size and not self.cell.supports_projection:
            raise InputError(f"`proj_size` is only supported by LSTM cells, got proj_size={proj_size} for "
                             f"{type(self.cell).__name__}")
        self.backend = check_backend(backend, self.cell, self._config())
        self._interventions: tuple[iv.Intervention, ...] = ()       # active in `with module.intervene(...)`
        self._make_parameters(device, dtype)
        self.reset_parameters()

    # -- parameters, named and ordered as torch.nn names and orders them --------------------------------------

    def _make_parameters(self, device, dtype) -> None:
        kw = {"device": device, "dtype": dtype}
        G, H, R = self.cell.gates, self.hidden_size, self.cell.output_size
        D = 2 if self.bidirectional else 1
        self._flat_weights_names: list[str] = []
        self._all_weights: list[list[str]] = []
        for layer in range(self.num_layers):
            layer_in = self.input_size if layer == 0 else R * D
            for d in range(D):
                shapes: dict[str, tuple[int, ...]] = {"weight_ih": (G * H, layer_in), "weight_hh": (G * H, R)}
                if self.bias:
                    shapes.update(bias_ih=(G * H,), bias_hh=(G * H,))
                if self.proj_size:
                    shapes["weight_hr"] = (self.proj_size, H)
                names = []
                for base, shape in shapes.items():
                    name = f"{base}_l{layer}{'_reverse' if d else ''}"
                    self.register_parameter(name, nn.Parameter(torch.empty(shape, **kw)))
                    names.append(name)
                self._flat_weights_names.extend(names)
                self._all_weights.append(names)
        # The cell's own parameters come after torch's, so torch's are drawn first from the same random stream.
        self._extra_names: list[tuple[str, str]] = []
        for layer in range(self.num_layers):
            for d in range(D):
                for base, shape in self.cell.extra_parameters().items():
                    name = f"{base}_l{layer}{'_reverse' if d else ''}"
                    self.register_parameter(name, nn.Parameter(torch.empty(shape, **kw)))
                    self._extra_names.append((base, name))

    def reset_parameters(self) -> None:
        """torch.nn's initialisation: every weight and bias ~ U(-1/sqrt(H), 1/sqrt(H)); the cell's own
        parameters as the cell says."""
        stdv = 1.0 / math.sqrt(self.hidden_size)
        for name in self._flat_weights_names:
            nn.init.uniform_(getattr(self, name), -stdv, stdv)
        for base, name in self._extra_names:
            self.cell.reset_extra_(base, getattr(self, name), stdv)

    @property
    def all_weights(self) -> list[list[nn.Parameter]]:
        return [[getattr(self, name) for name in names] for names in self._all_weights]

    @property
    def _flat_weights(self) -> list[Tensor]:
        return [getattr(self, name) for name in self._flat_weights_names]

    def flatten_parameters(self) -> None:
        """Kept so code written for torch.nn runs unchanged; lstmkit's engines need no flattened buffer."""

    def _weights(self) -> list[list[Weights]]:
        D = 2 if self.bidirectional else 1
        out = []
        for layer in range(self.num_layers):
            row = []
            for d in range(D):
                suffix = f"_l{layer}{'_reverse' if d else ''}"
                get = lambda base, s=suffix: getattr(self, base + s, None)  # noqa: E731
                extra = {base: getattr(self, base + suffix) for base in self.cell.extra_parameters()}
                row.append(Weights(getattr(self, "weight_ih" + suffix), getattr(self, "weight_hh" + suffix),
                                   get("bias_ih"), get("bias_hh"), get("weight_hr"), extra))
            out.append(row)
        return out

    def _config(self) -> RunConfig:
        return RunConfig(self.num_layers, self.bidirectional, self.dropout, self.training,
                         self.recurrent_dropout, self.zoneout)

    # -- the call -------------------------------------------------------------------------------------------

    def forward(self, input, hx=None, *, interventions=None):
        r"""Runs the cell over every step, layer and direction, as torch.nn.LSTM/GRU/RNN's ``forward``.

        Shapes: ``T`` steps, ``B`` batch, ``I`` input_size, ``H`` hidden_size, ``P`` proj_size, ``R = P`` if
        ``P > 0`` else ``H``, ``D = 2`` if bidirectional else 1, ``L`` num_layers.

        Inputs: ``input, hx``
            - **input**: ``(T, B, I)``, ``(B, T, I)`` with ``batch_first``, ``(T, I)`` unbatched, or a
              ``PackedSequence`` of ``(sum of lengths, I)``.
            - **hx** (optional, zeros by default): the initial state, one tensor per entry of ``cell.states``
              (LSTM a tuple ``(h_0, c_0)``, GRU and RNN the tensor ``h_0``): ``h_0`` of ``(D*L, B, R)``,
              ``c_0`` of ``(D*L, B, H)``; without the ``B`` dimension for unbatched input.

        Outputs: ``output, h_n`` (GRU, RNN) or ``output, (h_n, c_n)`` (LSTM)
            - **output**: ``(T, B, D*R)`` (``(B, T, D*R)`` with ``batch_first``, ``(T, D*R)`` unbatched, a
              ``PackedSequence`` for packed input): the last layer's ``h_t`` for every step, both directions
              concatenated.
            - **h_n**: ``(D*L, B, R)``, the final ``h`` of every layer and direction; **c_n**: ``(D*L, B, H)``,
              the final cell state (LSTM). For packed input, each sequence's state at its own last step.

        ``interventions``: None, or interventions (:mod:`lstmkit.interventions`: ``lstmkit.clamp``, ``scale``,
        ``add``, ``ablate``, ``patch``) applied inside the recurrence for this call, after those of an enclosing
        :meth:`intervene` block.
        """
        if onnx_mode.active():                    # inside lstmkit.onnx.export: the form ONNX can run
            from ..onnx import graph
            return graph.forward(self, input, hx)
        if is_proxy(input, hx):                     # torch.fx.symbolic_trace: one call_module node (see .fx)
            return leaf_call(self, input, interventions=interventions) if hx is None else \
                leaf_call(self, input, hx, interventions=interventions)
        _checks.not_left_float(self, self.__dict__.get("qconfig"))
        form, seq, hx = self._prepare(input, hx)
        config = self._call_config(form, seq, interventions)
        engine = self._engine(seq, config, trace=False)
        out, state, _ = engine.run(self.cell, seq, hx, self._weights(), config, trace=False)
        return form.output(out), _one_or_tuple(form.states_out(state))

    def trace(self, input, hx=None, *, interventions=None) -> Trace:
        """Runs like ``forward`` and also returns every step's gates and states.

        Inputs: ``input, hx`` as for :meth:`forward`.

        Outputs: a :class:`lstmkit.Trace`
            - ``trace.output``, ``trace.state``: exactly what :meth:`forward` returns.
            - ``trace[layer, direction]``: a named tuple with one tensor per name in ``cell.records`` (LSTM
              ``i, f, g, o, c, h``; GRU ``r, z, n, h``; RNN ``a, h``), each laid out like that direction's
              output: ``(T, B, S)``, ``(B, T, S)`` with ``batch_first``, ``(T, S)`` unbatched, padded with zeros
              past each sequence's end for packed input (in the caller's batch order; ``trace.lengths`` (B,)).
              ``S`` is ``H`` for gates and ``c``, ``R`` for ``h``.

        Under ``torch.no_grad()`` it records values only; with gradients enabled the records are differentiable
        functions of the parameters and the input. ``interventions`` as for :meth:`forward`; the records show the
        intervened values."""
        form, seq, hx = self._prepare(input, hx)
        config = self._call_config(form, seq, interventions)
        engine = self._engine(seq, config, trace=True)
        out, state, records = engine.run(self.cell, seq, hx, self._weights(), config, trace=True)
        assert records is not None                  # every engine returns records when asked to trace
        make = record_type(self.cell.records)
        shaped = [[make(*(form.record(r) for r in rec)) for rec in row] for row in records]
        return Trace(form.output(out), _one_or_tuple(form.states_out(state)), shaped, form.lengths(seq),
                     self.batch_first)

    def engine_for(self, input, hx=None, *, trace: bool = False, interventions=None) -> str:
        """The name of the engine (``"torch"``, ``"fused"`` or ``"reference"``) that ``forward`` (or ``trace``)
        would run for this input; checks the call like they do."""
        form, seq, _ = self._prepare(input, hx)
        return self._engine(seq, self._call_config(form, seq, interventions), trace=trace).NAME

    def _intervention_model(self) -> iv.Model:
        cell = self.cell
        editable = cell.records if cell.takes_edit() else tuple(n for n in cell.records if n in cell.states)
        return iv.Model(cell.records, editable, {n: cell.record_size(n) for n in cell.records}, self.num_layers,
                        2 if self.bidirectional else 1, self.batch_first)

    def _call_config(self, form: InputForm, seq: Sequences, interventions) -> RunConfig:
        """The call's RunConfig: the module's, plus the active interventions in engine form. None active: the
        module's config unchanged (the call runs exactly as it would without interventions)."""
        config = self._config()
        if interventions is None and not self._active_interventions():
            return config
        active = [*self._active_interventions(), *iv.as_list(interventions)]
        if not active:
            return config
        x = seq.values()
        dtype = x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32
        edits = iv.compile_edits(active, self._intervention_model(), form, seq, dtype)
        return dataclasses.replace(config, edits=edits)

    def _engine(self, seq: Sequences, config: RunConfig, *, trace: bool):
        """The engine for this call (:func:`lstmkit.engines.choose`); an explicit backend that cannot serve it
        raises."""
        return choose(self.backend, self.cell, config, seq.values(), trace, steps=seq.steps, batch=seq.batch)

    def _prepare(self, input, hx) -> tuple[InputForm, Sequences, tuple[Tensor, ...]]:
        """Checks the call and turns it into engine form: the caller's form, the batch, the initial states."""
        weight = getattr(self, self._flat_weights_names[0])
        _checks.sequence_input(input, input_size=self.input_size, weight=weight, batch_first=self.batch_first)
        _checks.parameters(self)
        form = InputForm.of(input, self.batch_first)
        seq = form.sequences(input)
        x = seq.values()
        B = seq.batch
        D = 2 if self.bidirectional else 1
        sizes = self.cell.state_sizes()
        if hx is None:
            hx = tuple(torch.zeros(self.num_layers * D, B, s, dtype=x.dtype, device=x.device) for s in sizes)
        else:
            hx = form.states_in(self._check_states(hx, self._state_names(), sizes, x, weight, B, D,
                                                   form.unbatched))
        return form, seq, hx

    def _state_names(self) -> tuple[str, ...]:
        return tuple(f"{s}0" for s in self.cell.states)

    def _check_states(self, hx, names, sizes, x, weight, B, D, unbatched) -> tuple[Tensor, ...]:
        together = "(" + ", ".join(names) + ")"
        if len(names) == 1:
            if not isinstance(hx, Tensor):
                raise InputTypeError(f"`hx` must be a Tensor {names[0]} for {type(self).__name__}, got "
                                     f"{type(hx).__name__}" + (" (a tuple is what an LSTM takes)"
                                                              if isinstance(hx, tuple | list) else ""))
            hx = (hx,)
        else:
            if isinstance(hx, Tensor):
                raise InputTypeError(f"`hx` must be a tuple {together} for {type(self).__name__}, got a single "
                                     "Tensor")
            if not isinstance(hx, tuple | list) or len(hx) != len(names):
                raise InputTypeError(f"`hx` must be a tuple {together} of {len(names)} tensors, got "
                                     f"{type(hx).__name__}" + (f" of length {len(hx)}"
                                                               if isinstance(hx, tuple | list) else ""))
        LD = self.num_layers * D
        expected: tuple[int, ...]
        for name, h, size in zip(names, hx, sizes, strict=True):
            what = "proj_size" if (size == self.proj_size and self.proj_size) else "hidden_size"
            if unbatched:
                expected, hint = (LD, size), f"(num_layers * num_directions = {LD}, {what} = {size})"
            else:
                expected, hint = (LD, B, size), (f"(num_layers * num_directions = {LD}, batch = {B}, "
                                                 f"{what} = {size})")
            _checks.state_tensor(f"hx[{names.index(name)}] ({name})" if len(names) > 1 else name, h, expected,
                                 x, weight, unbatched, hint)
        return tuple(hx)

    def __delattr__(self, name: str) -> None:
        if name == "qconfig":      # torch.ao.quantization's convert unmarks the modules it did not swap
            _checks.not_left_float(self, self.__dict__.get("qconfig"))
        super().__delattr__(name)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        for name, default in (("proj_size", 0), ("num_layers", 1), ("bias", True), ("batch_first", False),
                              ("dropout", 0.0), ("bidirectional", False), ("recurrent_dropout", 0.0),
                              ("zoneout", 0.0), ("backend", "auto")):
            if getattr(self, name) != default:
                s += f", {name}={getattr(self, name)!r}"
        cell = self.cell.describe()
        return s + (f", {cell}" if cell else "")


def _one_or_tuple(state: tuple[Tensor, ...]):
    """torch.nn's form of the final state: ``h_n`` alone, or the tuple ``(h_n, c_n)``."""
    return state if len(state) > 1 else state[0]
