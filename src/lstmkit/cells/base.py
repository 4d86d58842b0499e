"""The cell contract: what one time step of a recurrent cell is, for every engine.

A cell is the math of one step and nothing else. It declares

- ``gates``: how many ``H``-row blocks ``W_ih``, ``W_hh``, ``b_ih`` and ``b_hh`` have (LSTM 4, GRU 3, RNN 1);
- ``states``: the names of the carried state, ``h`` first (the last ``h`` is the layer's output);
- ``records``: the names of what one step reveals to :meth:`lstmkit.LSTM.trace`, in order;

and implements :meth:`Cell.step`. Layers, directions, packing, ``batch_first``, dropout between layers,
recurrent dropout, zoneout and tracing are the engine's job (see ``lstmkit.engines.reference``), so a new cell
is one small file.

Shapes: ``T`` steps, ``B`` batch, ``I`` input, ``H`` hidden, ``P`` projection (``R = P or H`` is the size of the
recurrent ``h``).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

Edit = Callable[[str, Tensor], Tensor]


_TAKES_EDIT: dict[type, bool] = {}


def unedited(name: str, v: Tensor) -> Tensor:
    """The ``edit`` of a step without interventions: every record as computed."""
    return v


@dataclass
class Weights:
    """The parameters of one layer and direction, under the names of the math (torch's names without the
    ``_l{k}{_reverse}`` suffix): ``weight_ih (G*H, I)``, ``weight_hh (G*H, R)``, ``bias_ih``/``bias_hh (G*H,)``
    or None, ``weight_hr (P, H)`` or None, and the cell's ``extra`` parameters by name.

    ``recurrent_mask`` is the variational (per-sequence) dropout mask on ``h_{t-1}``, already scaled by
    ``1/(1-p)``; :meth:`recurrent_input` applies it, so every cell gets recurrent dropout for free.
    """

    weight_ih: Tensor
    weight_hh: Tensor
    bias_ih: Tensor | None = None
    bias_hh: Tensor | None = None
    weight_hr: Tensor | None = None
    extra: dict[str, Tensor] | None = None
    recurrent_mask: Tensor | None = None

    def __getitem__(self, name: str) -> Tensor:
        if self.extra is None:
            raise KeyError(name)
        return self.extra[name]

    def recurrent_input(self, h: Tensor) -> Tensor:
        """``h_{t-1}`` as the recurrent product sees it: with the recurrent dropout mask when one is set."""
        return h if self.recurrent_mask is None else h * self.recurrent_mask

    def hh(self, h: Tensor) -> Tensor:
        """``h_{t-1} W_hh^T + b_hh``  (B, G*H), through the recurrent dropout mask."""
        return F.linear(self.recurrent_input(h), self.weight_hh, self.bias_hh)


class Cell:
    """Base class of a cell; subclasses set ``gates``, ``states``, ``records`` and implement ``step``."""

    gates: int = 1
    states: tuple[str, ...] = ("h",)
    records: tuple[str, ...] = ("h",)
    #: True when the cell is exactly one of torch's fused kernels, so the ``torch`` engine can run it.
    torch_kernel: str | None = None
    #: True when the cell can project ``h`` (LSTM's ``proj_size``).
    supports_projection: bool = False

    def __init__(self, hidden_size: int, proj_size: int = 0):
        self.hidden_size = hidden_size
        self.proj_size = proj_size

    @property
    def output_size(self) -> int:
        """R: the size of ``h`` (the projection's when there is one)."""
        return self.proj_size or self.hidden_size

    def state_sizes(self) -> tuple[int, ...]:
        """The feature size of each state in ``states`` (``h`` has R, any other state H)."""
        return tuple(self.output_size if s == "h" else self.hidden_size for s in self.states)

    def extra_parameters(self) -> dict[str, tuple[int, ...]]:
        """Parameters beyond torch's, per layer and direction: ``{name: shape}``. Their names follow torch's
        scheme (``weight_peephole`` becomes ``weight_peephole_l0``, ``weight_peephole_l0_reverse``, ...)."""
        return {}

    def reset_extra_(self, name: str, p: Tensor, stdv: float) -> None:
        """Initialise one extra parameter; by default like torch initialises every weight."""
        torch.nn.init.uniform_(p, -stdv, stdv)

    def project_input(self, x: Tensor, w: Weights) -> Tensor:
        """The non-recurrent part of every step, for all steps at once: ``x W_ih^T + b_ih``  (T, B, G*H).
        Engines call it once per layer and direction, so this is one GEMM over all T*B rows."""
        return F.linear(x, w.weight_ih, w.bias_ih)

    def record_size(self, name: str) -> int:
        """The feature size of record ``name``: R for ``h``, H for every other (override for other sizes)."""
        return self.output_size if name == "h" else self.hidden_size

    def step(self, xw: Tensor, state: tuple[Tensor, ...], w: Weights,
             edit: Edit = unedited) -> tuple[tuple[Tensor, ...], tuple]:
        """One step: ``xw`` (B, G*H) is this step's row of :meth:`project_input`, ``state`` the carried state.
        Returns the new state (same order as ``states``) and the values of ``records`` (same order).

        ``edit(name, v)`` returns the value the rest of the step uses in place of record ``name`` (interventions,
        :mod:`lstmkit.interventions`): a cell calls it on each record where it computes it, so ``v = edit("f",
        v)`` lets an intervened ``f`` reach ``c`` and every later step. A cell whose ``step`` takes no ``edit``
        can still be intervened on at its states (applied by the engine after the step)."""
        raise NotImplementedError(f"{type(self).__name__} must implement step()")

    @classmethod
    def takes_edit(cls) -> bool:
        """Whether this cell's ``step`` accepts ``edit`` (see :meth:`step`)."""
        if cls not in _TAKES_EDIT:
            params = inspect.signature(cls.step).parameters
            _TAKES_EDIT[cls] = "edit" in params or any(p.kind is inspect.Parameter.VAR_KEYWORD
                                                       for p in params.values())
        return _TAKES_EDIT[cls]

    def replay(self, xw: Tensor, hw: Tensor, y: Tensor, state0: tuple[Tensor, ...]) -> tuple:
        """The records of a whole sequence recovered after a fused kernel ran it, without a step loop.

        ``xw = x W_ih^T + b_ih`` and ``hw = h_{t-1} W_hh^T + b_hh`` (T, B, G*H) are batched GEMMs over all steps
        (every ``h_{t-1}`` is known from the output ``y`` (T, B, R)); ``state0`` is the initial state. Cells
        that ``torch_kernel`` names implement it so the ``torch`` engine can trace them."""
        raise NotImplementedError(f"{type(self).__name__} has no replay(); trace it with the reference engine")

    def describe(self) -> str:
        """Options shown in the module's repr."""
        return ""
