"""The lab's model: one lstmkit recurrent layer stack (RNN, GRU or LSTM) and a linear read-out at every step.

``SequenceModel(spec, input_size, output_size)`` maps ``x`` (B, T, I) to ``y`` (B, T, O); the task decides which
steps count. ``ModelSpec`` is the whole description (what a run's config.json stores), so a model can be rebuilt
from a finished run.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
from torch import Tensor, nn

import lstmkit

from .._rules import check, one_of

MODELS = ("rnn", "gru", "lstm")
INITS = ("forget-bias", "chrono", "torch")
# What each model's default cell is made of, for the textbook table: gate layers are the sigmoid/tanh layers
# that read [x_t, h_{t-1}].
GATE_LAYERS = {"rnn": 1, "gru": 3, "lstm": 4}


@dataclass(frozen=True)
class ModelSpec:
    """``model`` is "rnn", "gru" or "lstm". The LSTM's initialisation ``init`` is "forget-bias" (the forget gate's
    effective bias starts at ``forget_bias``), "chrono" (Tallec & Ollivier 2018 with ``t_max`` = the task's
    length) or "torch" (torch.nn's uniform init, which starts the forget gate near 0.5)."""

    model: str = "lstm"
    hidden: int = 32
    layers: int = 1
    init: str = "forget-bias"
    forget_bias: float = 3.0
    peephole: bool = False
    layer_norm: bool = False
    coupled: bool = False
    recurrent_dropout: float = 0.0
    zoneout: float = 0.0

    def __post_init__(self):
        check("model", self.model, one_of(MODELS))
        check("init", self.init, one_of(INITS))
        if self.model != "lstm":
            lstm_only = [f.name for f in fields(self) if f.name in ("peephole", "layer_norm", "coupled")
                         and getattr(self, f.name)]
            if lstm_only:
                raise ValueError(f"{', '.join(lstm_only)} only apply to model 'lstm', got model {self.model!r}")

    @classmethod
    def from_dict(cls, d: dict) -> ModelSpec:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    def to_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        if self.model != "lstm":
            return self.model
        init = {"forget-bias": f"forget bias {self.forget_bias:g}", "chrono": "chrono init",
                "torch": "torch init"}[self.init]
        extras = [n for n in ("peephole", "layer_norm", "coupled") if getattr(self, n)]
        return f"lstm ({', '.join([init, *extras])})"


class SequenceModel(nn.Module):
    """``rnn`` (an lstmkit RNN/GRU/LSTM, batch_first) then ``head`` (Linear H -> O) at every step."""

    def __init__(self, spec: ModelSpec, input_size: int, output_size: int, t_max: int):
        super().__init__()
        self.spec = spec
        common: dict[str, Any] = dict(num_layers=spec.layers, batch_first=True,
                                      recurrent_dropout=spec.recurrent_dropout, zoneout=spec.zoneout)
        self.rnn: lstmkit.Recurrent
        if spec.model == "rnn":
            self.rnn = lstmkit.RNN(input_size, spec.hidden, nonlinearity="tanh", **common)
        elif spec.model == "gru":
            self.rnn = lstmkit.GRU(input_size, spec.hidden, **common)
        else:
            forget_bias = spec.forget_bias if spec.init == "forget-bias" else None
            self.rnn = lstmkit.LSTM(input_size, spec.hidden, forget_bias=forget_bias, peephole=spec.peephole,
                                    layer_norm=spec.layer_norm, coupled=spec.coupled, **common)
            if spec.init == "chrono":
                lstmkit.init.chrono_(self.rnn, max(t_max, 3))
        self.head = nn.Linear(spec.hidden, output_size)

    def forward(self, x: Tensor) -> Tensor:
        h, _ = self.rnn(x)  # (B, T, H)
        return self.head(h)  # (B, T, O)

    def step_states(self, x: Tensor) -> tuple[Tensor, list[Tensor], list[Tensor]]:
        """Run one step at a time through the same module. Returns the outputs ``y`` (B, T, O), computed from the
        states, and every step's state ``h_t`` (L, B, H) (and ``c_t`` for an LSTM): each is the one graph node
        that both the read-out and the next step use, so after ``h_t.retain_grad()`` and a backward,
        ``h_t.grad`` is the total derivative dL/dh_t."""
        hs, cs, state = [], [], None
        for t in range(x.shape[1]):
            _, state = self.rnn(x[:, t : t + 1], state)  # one step; state (L, B, H) or a pair of them
            h, c = state if isinstance(state, tuple) else (state, None)
            hs.append(h)
            if c is not None:
                cs.append(c)
        y = self.head(torch.stack([h[-1] for h in hs], dim=1))  # (B, T, O) from the top layer's h_t
        return y, hs, cs


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
