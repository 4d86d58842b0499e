"""``RecurrentCell``: one step of any cell as a module, with torch.nn.LSTMCell/GRUCell/RNNCell's constructor,
parameters (``weight_ih``, ``weight_hh``, ``bias_ih``, ``bias_hh``) and call."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

from .. import _checks
from .. import interventions as iv
from ..cells import Cell, Weights
from ..engines import RunConfig, check_backend, choose, reference, torch_kernel
from ..errors import InputTypeError
from ..sequences import InputForm, Sequences
from .fx import is_proxy, leaf_call

BACKENDS = ("auto", "torch", "reference")


class RecurrentCell(iv.Intervenable, nn.Module):
    """One step of ``cell`` (a :class:`lstmkit.cells.Cell` class called as ``cell(hidden_size, 0)``).

    - ``backend``: ``"auto"`` (torch's fused cell kernel when it computes exactly this cell, else the
      reference), ``"torch"`` or ``"reference"`` (the cell's equations).
    - ``recurrent_dropout``: variational dropout on the incoming ``h``. A cell sees one step, not a sequence, so
      (as Keras does) the mask is drawn at the first training call and reused until :meth:`reset_dropout_mask`,
      which a loop calls at the start of each sequence.
    - ``zoneout``: each unit of each state keeps its incoming value with probability ``p`` (a fresh draw every
      call) in training, and moves by the expectation ``p s + (1 - p) s̃`` in eval.

    ``forward`` takes ``interventions=`` and ``with cell.intervene(...)`` applies some to every call in a block
    (:mod:`lstmkit.interventions`; one step, so ``steps`` is None or 0, and ``layer``, ``direction`` are 0). A
    call with interventions runs on the reference engine (torch's cell kernel cannot reach inside the step).
    """

    def __init__(self, cell: Callable[[int, int], Cell], input_size: int, hidden_size: int, bias: bool = True,
                 device=None, dtype=None, *, backend: str = "auto", recurrent_dropout: float = 0.0,
                 zoneout: float = 0.0):
        super().__init__()
        self.input_size = _checks.positive_int("input_size", input_size)
        self.hidden_size = _checks.positive_int("hidden_size", hidden_size)
        self.bias = _checks.flag("bias", bias)
        self.recurrent_dropout = _checks.probability("recurrent_dropout", recurrent_dropout, upper_inclusive=False)
        self.zoneout = _checks.probability("zoneout", zoneout, upper_inclusive=False)
        self.cell = cell(self.hidden_size, 0)
        self.backend = check_backend(backend, self.cell, self._config(), offered=BACKENDS, what="cell")
        self._recurrent_mask: Tensor | None = None
        self._interventions: tuple[iv.Intervention, ...] = ()
        kw = {"device": device, "dtype": dtype}
        G, H = self.cell.gates, self.hidden_size
        self.weight_ih = nn.Parameter(torch.empty(G * H, self.input_size, **kw))
        self.weight_hh = nn.Parameter(torch.empty(G * H, H, **kw))
        if self.bias:
            self.bias_ih = nn.Parameter(torch.empty(G * H, **kw))
            self.bias_hh = nn.Parameter(torch.empty(G * H, **kw))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        for name, shape in self.cell.extra_parameters().items():
            self.register_parameter(name, nn.Parameter(torch.empty(shape, **kw)))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        stdv = 1.0 / math.sqrt(self.hidden_size)
        for p in (self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh):
            if p is not None:
                nn.init.uniform_(p, -stdv, stdv)
        for name in self.cell.extra_parameters():
            self.cell.reset_extra_(name, getattr(self, name), stdv)

    def _config(self) -> RunConfig:
        return RunConfig(1, False, training=self.training, recurrent_dropout=self.recurrent_dropout,
                         zoneout=self.zoneout, single_step=True)

    def reset_dropout_mask(self) -> None:
        """Forget the recurrent dropout mask, so the next training call draws a new one (a new sequence)."""
        self._recurrent_mask = None

    def __delattr__(self, name: str) -> None:
        if name == "qconfig":      # torch.ao.quantization's convert unmarks the modules it did not swap
            _checks.not_left_float(self, self.__dict__.get("qconfig"))
        super().__delattr__(name)

    def forward(self, input: Tensor, hx=None, *, interventions=None):
        if is_proxy(input, hx):                     # torch.fx.symbolic_trace: one call_module node (see .fx)
            return leaf_call(self, input, interventions=interventions) if hx is None else \
                leaf_call(self, input, hx, interventions=interventions)
        _checks.not_left_float(self, self.__dict__.get("qconfig"))
        _checks.sequence_input(input, input_size=self.input_size, weight=self.weight_ih, cell=True)
        _checks.parameters(self)
        unbatched = input.dim() == 1
        x = input.unsqueeze(0) if unbatched else input                          # (B, I)
        state = self._states(hx, x, unbatched)
        if unbatched:
            state = tuple(s.unsqueeze(0) for s in state)
        w = Weights(self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh, None,
                    {name: getattr(self, name) for name in self.cell.extra_parameters()})
        config = self._config()
        edits = None
        if interventions is not None or self._active_interventions():
            edits = self._edits(x, unbatched, interventions)
            config = dataclasses.replace(config, edits=edits)
        engine = choose(self.backend, self.cell, config, x, trace=False)
        if engine is torch_kernel:
            new = torch_kernel.step(self.cell, x, state, w)
        else:
            w.recurrent_mask = self._mask_for(state[0])
            new = reference.step(self.cell, x, state, w, self._zoneout_keep(state),
                                 edits[0, 0] if edits is not None else None)
        if unbatched:
            new = tuple(s.squeeze(0) for s in new)
        return new if len(new) > 1 else new[0]

    def _intervention_model(self) -> iv.Model:
        cell = self.cell
        editable = cell.records if cell.takes_edit() else tuple(n for n in cell.records if n in cell.states)
        return iv.Model(cell.records, editable, {n: cell.record_size(n) for n in cell.records}, 1, 1, False)

    def _edits(self, x: Tensor, unbatched: bool, interventions) -> iv.Edits | None:
        """This call's interventions as edits over its one step, x (B, I); None when there are none."""
        active = [*self._active_interventions(), *iv.as_list(interventions)]
        if not active:
            return None
        dtype = x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32
        return iv.compile_edits(active, self._intervention_model(), InputForm(False, unbatched),
                                Sequences(padded=x.unsqueeze(0)), dtype)

    def _mask_for(self, h: Tensor) -> Tensor | None:
        if not (self.training and self.recurrent_dropout > 0):
            return None
        if self._recurrent_mask is None or self._recurrent_mask.shape != h.shape:
            keep = 1.0 - self.recurrent_dropout
            self._recurrent_mask = torch.empty_like(h).bernoulli_(keep).div_(keep)
        return self._recurrent_mask

    def _zoneout_keep(self, state: tuple[Tensor, ...]) -> tuple[Tensor, ...] | float | None:
        """Zoneout for this step: a fresh 0/1 keep-mask per state (training), p (eval), or None."""
        if self.zoneout == 0:
            return None
        if not self.training:
            return self.zoneout
        return tuple(torch.empty_like(s).bernoulli_(self.zoneout) for s in state)

    def _states(self, hx, x: Tensor, unbatched: bool) -> tuple[Tensor, ...]:
        names = self.cell.states
        shape = (self.hidden_size,) if unbatched else (x.shape[0], self.hidden_size)
        if hx is None:
            return tuple(torch.zeros(shape, dtype=x.dtype, device=x.device) for _ in names)
        kind = type(self).__name__
        if len(names) == 1:
            if not isinstance(hx, Tensor):
                raise InputTypeError(f"`hx` must be a Tensor h for {kind}, got {type(hx).__name__}")
            hx = (hx,)
        elif isinstance(hx, Tensor):
            raise InputTypeError(f"`hx` must be a tuple (h, c) for {kind}, got a single Tensor")
        elif not isinstance(hx, tuple | list) or len(hx) != len(names):
            raise InputTypeError(f"`hx` must be a tuple ({', '.join(names)}) for {kind}, got {type(hx).__name__}")
        hint = "(hidden_size,)" if unbatched else "(batch, hidden_size)"
        for k, (name, h) in enumerate(zip(names, hx, strict=True)):
            _checks.state_tensor(f"hx[{k}] ({name})" if len(names) > 1 else name, h, shape, x, self.weight_ih,
                                 unbatched, hint)
        return tuple(hx)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if not self.bias:
            s += ", bias=False"
        for name, default in (("recurrent_dropout", 0.0), ("zoneout", 0.0), ("backend", "auto")):
            if getattr(self, name) != default:
                s += f", {name}={getattr(self, name)!r}"
        cell = self.cell.describe()
        return s + (f", {cell}" if cell else "")
