r"""The LSTM cell: the conveyor belt ``c`` and its three gates, and the variants torch.nn lacks.

At step ``t``, with ``h = h_{t-1}``, ``c = c_{t-1}`` and :math:`\sigma` the logistic sigmoid::

    a       = x_t W_ih^T + b_ih + h W_hh^T + b_hh                       (B, 4H), split as a_i, a_f, a_g, a_o
    i       = σ(a_i)                    input gate: how much of the candidate to write
    f       = σ(a_f)                    forget gate: how much of the belt to keep
    g       = tanh(a_g)                 candidate values
    c_t     = f ⊙ c + i ⊙ g             the belt: only elementwise scaling and adding
    o       = σ(a_o)                    output gate
    h_t     = o ⊙ tanh(c_t)             (then h_t W_hr^T when proj_size > 0)

Variants (any combination):

- ``peephole`` (Gers & Schmidhuber 2000): ``a_i += p_i ⊙ c``, ``a_f += p_f ⊙ c`` and ``a_o += p_o ⊙ c_t``, with
  the diagonal weights ``weight_peephole`` of shape (3, H) in the order (i, f, o).
- ``layer_norm`` (Ba et al. 2016, placed as in haste's LayerNormLSTM): the input and recurrent products are
  normalised separately before the biases are added, and the cell before its tanh::

      a   = LN(x_t W_ih^T; γ_ih) + b_ih + LN(h W_hh^T; γ_hh) + b_hh     LN over the 4H features, gain only
      h_t = o ⊙ tanh(LN(c_t; γ_c, β_c))                                 LN over the H features, gain and bias

  with ``LN(v; γ, β) = γ ⊙ (v − mean v) / sqrt(var v + 1e-5) + β`` (biased variance); the gains are
  ``weight_ln_ih`` (4H), ``weight_ln_hh`` (4H), ``weight_ln_c`` (H), initialised to 1, and ``bias_ln_c`` (H) to 0.
  ``c_t`` itself stays un-normalised, so the belt is the same belt.
- ``coupled`` (CIFG, Greff et al. 2017): ``f = 1 − i``. The forget rows of the weights stay (so the
  ``state_dict`` keeps torch's shapes) and receive zero gradient.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch
import torch.nn.functional as F
from torch import Tensor

from .base import Cell, Edit, Weights, unedited

LN_EPS = 1e-5


def layer_norm(v: Tensor, gain: Tensor, bias: Tensor | None = None) -> Tensor:
    """``γ ⊙ (v − mean v) / sqrt(var v + eps) + β`` over the last dimension."""
    return F.layer_norm(v, v.shape[-1:], gain, bias, LN_EPS)


@dataclass(frozen=True)
class LSTMVariant:
    """Which terms an LSTM cell has beyond torch's. The one description of the options: :meth:`LSTMCellMath.step`,
    the parameters, the fused engine's configuration and the module's repr all read it, so a new variant is one
    field here, its parameters in :meth:`parameters` and its math in ``step`` (and the engines that run it)."""

    peephole: bool = False
    layer_norm: bool = False
    coupled: bool = False

    @property
    def plain(self) -> bool:
        """No variant: exactly torch's LSTM."""
        return not any(getattr(self, f.name) for f in fields(self))

    def parameters(self, H: int) -> dict[str, tuple[int, ...]]:
        """The parameters each option adds, per layer and direction: ``{name: shape}``."""
        extra: dict[str, tuple[int, ...]] = {}
        if self.peephole:
            extra["weight_peephole"] = (3, H)                                    # rows p_i, p_f, p_o
        if self.layer_norm:
            extra.update(weight_ln_ih=(4 * H,), weight_ln_hh=(4 * H,), weight_ln_c=(H,), bias_ln_c=(H,))
        return extra

    def describe(self) -> str:
        return ", ".join(f"{f.name}=True" for f in fields(self) if getattr(self, f.name))


class LSTMCellMath(Cell):
    gates = 4
    states = ("h", "c")
    records = ("i", "f", "g", "o", "c", "h")
    supports_projection = True

    def __init__(self, hidden_size: int, proj_size: int = 0, *, peephole: bool = False,
                 layer_norm: bool = False, coupled: bool = False):
        super().__init__(hidden_size, proj_size)
        self.variant = LSTMVariant(peephole, layer_norm, coupled)
        self.torch_kernel = "lstm" if self.variant.plain else None

    @property
    def peephole(self) -> bool:
        return self.variant.peephole

    @property
    def layer_norm(self) -> bool:
        return self.variant.layer_norm

    @property
    def coupled(self) -> bool:
        return self.variant.coupled

    def extra_parameters(self) -> dict[str, tuple[int, ...]]:
        return self.variant.parameters(self.hidden_size)

    def reset_extra_(self, name: str, p: Tensor, stdv: float) -> None:
        if name.startswith("weight_ln"):
            torch.nn.init.ones_(p)
        elif name.startswith("bias_ln"):
            torch.nn.init.zeros_(p)
        else:
            super().reset_extra_(name, p, stdv)

    def project_input(self, x: Tensor, w: Weights) -> Tensor:
        if not self.layer_norm:
            return F.linear(x, w.weight_ih, w.bias_ih)                           # (T, B, 4H)
        a_x = layer_norm(F.linear(x, w.weight_ih), w["weight_ln_ih"])           # (T, B, 4H)
        return a_x if w.bias_ih is None else a_x + w.bias_ih

    def step(self, xw: Tensor, state: tuple[Tensor, ...], w: Weights, edit: Edit = unedited):
        h, c = state                                                             # (B, R), (B, H)
        if self.layer_norm:
            a_h = layer_norm(F.linear(w.recurrent_input(h), w.weight_hh), w["weight_ln_hh"])
            a = xw + (a_h if w.bias_hh is None else a_h + w.bias_hh)             # (B, 4H)
        else:
            a = xw + w.hh(h)                                                     # (B, 4H)
        a_i, a_f, a_g, a_o = a.chunk(4, dim=-1)                                  # (B, H) each
        if self.peephole:
            p_i, p_f, p_o = w["weight_peephole"]                                 # (H,) each
            a_i = a_i + p_i * c
            a_f = a_f + p_f * c
        i = edit("i", torch.sigmoid(a_i))
        f = edit("f", 1 - i if self.coupled else torch.sigmoid(a_f))
        g = edit("g", torch.tanh(a_g))
        c = edit("c", f * c + i * g)                                             # (B, H)
        if self.peephole:
            a_o = a_o + p_o * c
        o = edit("o", torch.sigmoid(a_o))
        m = layer_norm(c, w["weight_ln_c"], w["bias_ln_c"]) if self.layer_norm else c
        h = o * torch.tanh(m)                                                    # (B, H)
        if w.weight_hr is not None:
            h = F.linear(h, w.weight_hr)                                         # (B, P)
        h = edit("h", h)
        return (h, c), (i, f, g, o, c, h)

    def replay(self, xw: Tensor, hw: Tensor, y: Tensor, state0: tuple[Tensor, ...]) -> tuple:
        i, f, g, o = (xw + hw).chunk(4, dim=-1)                                  # (T, B, H) each
        i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
        # The belt is the one sequential part: c_t = f_t * c_{t-1} + i_t * g_t, elementwise only.
        ig = i * g                                                               # (T, B, H)
        cs, c = [], state0[1]
        for t in range(xw.shape[0]):
            c = torch.addcmul(ig[t], f[t], c)
            cs.append(c)
        return i, f, g, o, torch.stack(cs), y

    def describe(self) -> str:
        return self.variant.describe()
