"""What an lstmkit module computes while it is exported to ONNX: the same results as ``forward``, written so that
``torch.export`` captures them as ONNX can run them.

Two forms, chosen per module by :func:`native_reason`:

- **native**: each layer is one custom op (``ops.py``) that becomes ONNX's own LSTM (peepholes as ``P``,
  ``coupled`` as ``input_forget=1``), GRU (``linear_before_reset=1``) or RNN node;
- **decomposed**: what those operators cannot express (``layer_norm``, ``proj_size``, zoneout's eval-mode mix,
  custom cells) runs the cell's own ``step`` under ``torch._higher_order_ops.scan``, which the exporter turns
  into an ONNX ``Scan`` over a dynamic number of steps (not T unrolled copies).

Packed lengths (:func:`lstmkit.onnx.padded`) become ONNX ``sequence_lens`` (native) or a per-step mask (decomposed).
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch._higher_order_ops.scan import scan

from ..cells import Cell, GRUCellMath, LSTMCellMath, RNNCellMath, Weights
from ..engines.reference import zoneout_mix
from ..errors import InputError
from ..sequences import reverse_within, valid_steps
from . import ops


def check_exportable(module) -> None:
    """Raises naming the option when the module, as it is now, has no deterministic graph to export."""
    if not module.training:
        return
    for name in ("dropout", "recurrent_dropout", "zoneout"):
        if getattr(module, name) > 0 and (name != "dropout" or module.num_layers > 1):
            raise InputError(f"cannot export {type(module).__name__} with {name}={getattr(module, name)} in "
                             "training mode: its random masks have no ONNX form; call module.eval() first "
                             f"(in eval, {name} is {'the expectation mix' if name == 'zoneout' else 'identity'})")


def native_reason(module) -> str | None:
    """None when ONNX's LSTM/GRU/RNN operator computes this module exactly, else what it lacks."""
    cell = module.cell
    if isinstance(cell, LSTMCellMath):
        if cell.layer_norm:
            return "layer_norm"
        if module.proj_size:
            return "proj_size"
    elif type(cell) not in (GRUCellMath, RNNCellMath):
        return f"the custom cell {type(cell).__name__}"
    if module.zoneout > 0:
        return "zoneout"              # eval mode: p s_{t-1} + (1 - p) s~_t, a mix the operators lack
    return None


def forward(module, input, hx, lengths: Tensor | None = None):
    """The module's ``forward`` (output, final state in torch.nn's form) in its export form. ``lengths`` (B,)
    marks each sequence's length in a padded ``input``."""
    check_exportable(module)
    form, seq, state = module._prepare(input, hx)
    x = seq.time_major()                                                        # (T, B, I)
    if lengths is not None:
        lengths = lengths.to(torch.int64)
    if native_reason(module) is None:
        y, state = _native(module, x, state, lengths)
    else:
        if hx is not None and getattr(module.cell, "coupled", False):
            # torch 2.13's decomposition of the scan fails on this graph ("'SymInt' object has no attribute
            # 'unsqueeze'" in torch/_higher_order_ops/scan.py stack_y); zero initial states export.
            raise InputError(f"cannot export coupled=True with {native_reason(module)} and initial states given: "
                             "torch's scan export fails on it; export without initial states (zeros), or without "
                             f"{native_reason(module)} (then coupled is ONNX's LSTM with input_forget=1)")
        y, state = _decomposed(module, x, state, lengths)
    return form.output(seq.like(y)), _one_or_tuple(form.states_out(state))


def _one_or_tuple(state: tuple[Tensor, ...]):
    return state if len(state) > 1 else state[0]


def _native(module, x: Tensor, hx: tuple[Tensor, ...], lengths: Tensor | None):
    cell: Cell = module.cell
    D = 2 if module.bidirectional else 1
    if isinstance(cell, LSTMCellMath):
        kind = "lstm"
    elif isinstance(cell, GRUCellMath):
        kind = "gru"
    else:
        assert isinstance(cell, RNNCellMath)                # native_reason lets through these three cells only
        kind = f"rnn_{cell.nonlinearity}"
    opts = ops.options(kind, module.hidden_size, D, module.bias, getattr(cell, "peephole", False),
                       getattr(cell, "coupled", False))
    finals: list[list[Tensor]] = [[] for _ in hx]
    for layer, row in enumerate(module._weights()):
        flat = [t for w in row for t in _flat(w, module.bias, getattr(cell, "peephole", False))]
        s0 = tuple(s[layer * D:(layer + 1) * D] for s in hx)                   # (D, B, S) each
        if kind == "lstm":
            x, h, c = ops.lstm_layer(x, flat, s0[0], s0[1], lengths, opts)
            layer_states: tuple[Tensor, ...] = (h, c)
        else:
            x, h = ops.gru_rnn_layer(x, flat, s0[0], lengths, opts)
            layer_states = (h,)
        for k, s in enumerate(layer_states):
            finals[k].append(s)
    return x, tuple(torch.cat(s) for s in finals)


def _flat(w: Weights, bias: bool, peephole: bool) -> list[Tensor]:
    out = [w.weight_ih, w.weight_hh]
    if bias:
        assert w.bias_ih is not None and w.bias_hh is not None
        out += [w.bias_ih, w.bias_hh]
    if peephole:
        out.append(w["weight_peephole"])
    return out


def _decomposed(module, x: Tensor, hx: tuple[Tensor, ...], lengths: Tensor | None):
    cell: Cell = module.cell
    D = 2 if module.bidirectional else 1
    keep = module.zoneout if module.zoneout > 0 else None
    finals: list[list[Tensor]] = [[] for _ in hx]
    for layer, row in enumerate(module._weights()):
        ys = []
        for d, w in enumerate(row):
            s0 = tuple(s[layer * D + d] for s in hx)                            # (B, S) each
            xd = x if d == 0 else reverse_within(x, lengths)
            y, state = _scan_direction(cell, xd, lengths, s0, w, keep)
            ys.append(y if d == 0 else reverse_within(y, lengths))
            for k, s in enumerate(state):
                finals[k].append(s)
        x = ys[0] if D == 1 else torch.cat(ys, dim=-1)                          # (T, B, D*R)
    return x, tuple(torch.stack(s) for s in finals)


def _scan_direction(cell: Cell, x: Tensor, lengths: Tensor | None, state: tuple[Tensor, ...], w: Weights,
                    keep: float | None):
    """One layer in one (forward) direction as a scan over steps: x (T, B, I) -> y (T, B, R), final state.
    The same step as the reference engine's ``run_direction`` (eval mode), written as scan's body."""
    xw = cell.project_input(x, w)                                               # (T, B, G*H)
    alive = valid_steps(lengths, x.shape[0], x.device)                          # (T, B, 1) or None

    def step(carry: tuple[Tensor, ...], inputs: tuple[Tensor, ...]):
        new, _ = cell.step(inputs[0], carry, w)                                 # inputs: xw_t (B, G*H)[, alive_t]
        if keep is not None:
            new = zoneout_mix(new, carry, keep)
        if len(inputs) == 1:
            return new, new[0].clone()
        alive_t = inputs[1]                                                     # (B, 1)
        new = tuple(torch.where(alive_t, n, s) for n, s in zip(new, carry, strict=True))
        return new, torch.where(alive_t, new[0], 0.0)

    final, y = scan(step, tuple(state), (xw,) if alive is None else (xw, alive))
    return y, tuple(final)
