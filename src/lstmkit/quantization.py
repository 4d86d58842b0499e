"""Dynamic quantisation of lstmkit modules, by torch's own quantised kernels.

torch's ``torch.ao.quantization.quantize_dynamic(model, {nn.LSTM, nn.GRU})`` picks modules by exact class
(``type(m) in qconfig_spec``, then ``type(m) in mapping``), so it passes over any other class, a subclass of
``nn.LSTM`` included: lstmkit cannot enter it by subclassing (see README, "How lstmkit relates to torch.nn").
Instead :func:`quantize_dynamic` (same arguments) adds lstmkit's classes beside each torch.nn class the spec names
and a mapping that turns a plain lstmkit module into torch's quantised module (``torch.ao.nn.quantized.dynamic``):
a plain lstmkit module computes exactly torch.nn's cell, so its quantised twin is torch.nn's quantised twin.

A module whose cell torch's kernel does not compute (a variant: peephole, layer_norm, coupled; zoneout; a custom
cell), or with ``proj_size`` (torch's quantised LSTM fails on it), has no quantised kernel: converting it raises
instead of dropping the difference. A module marked for quantisation (a ``qconfig`` set on it) but left in float,
because the mapping did not cover it, raises when the conversion removes its qconfig or at its first call
(:func:`lstmkit._checks.not_left_float`), instead of running in float.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .engines import RunConfig, torch_kernel
from .errors import InputError
from .modules import GRU, LSTM, GRUCell, LSTMCell, Recurrent, RecurrentCell, RNNCell

__all__ = ["dynamic_quant_mappings", "quantize_dynamic"]

# lstmkit's class -> (the torch.nn class it matches, the constructor arguments they share)
TWINS: dict[type[nn.Module], tuple[type[nn.Module], tuple[str, ...]]] = {
    LSTM: (nn.LSTM, ("input_size", "hidden_size", "num_layers", "bias", "batch_first", "dropout", "bidirectional",
                     "proj_size")),
    GRU: (nn.GRU, ("input_size", "hidden_size", "num_layers", "bias", "batch_first", "dropout", "bidirectional")),
    LSTMCell: (nn.LSTMCell, ("input_size", "hidden_size", "bias")),
    GRUCell: (nn.GRUCell, ("input_size", "hidden_size", "bias")),
    RNNCell: (nn.RNNCell, ("input_size", "hidden_size", "bias", "nonlinearity")),
}


def quantize_dynamic(model: nn.Module, qconfig_spec=None, dtype=torch.qint8, mapping=None, inplace=False):
    """``torch.ao.quantization.quantize_dynamic`` that also quantises lstmkit's modules: wherever ``qconfig_spec``
    names a torch.nn class (or, when None, torch's default classes for ``dtype``), the lstmkit class that matches
    it is named too, with the same qconfig; ``mapping`` (default torch's) gains :func:`dynamic_quant_mappings`.
    A module whose configuration torch's quantised kernels do not compute raises :class:`lstmkit.InputError`."""
    from torch.ao import quantization as tq

    twins_of = {twin: ours for ours, (twin, _) in TWINS.items()}
    if qconfig_spec is None:
        if dtype not in (torch.qint8, torch.float16):
            return tq.quantize_dynamic(model, None, dtype, mapping, inplace)
        qconfig = tq.default_dynamic_qconfig if dtype == torch.qint8 else tq.float16_dynamic_qconfig
        qconfig_spec = {t: qconfig for t in (nn.Linear, nn.LSTM, nn.GRU, nn.LSTMCell, nn.RNNCell, nn.GRUCell)}
    if isinstance(qconfig_spec, set):
        qconfig_spec = qconfig_spec | {twins_of[t] for t in qconfig_spec if t in twins_of}
    else:
        qconfig_spec = {**{twins_of[t]: q for t, q in qconfig_spec.items() if t in twins_of}, **qconfig_spec}
    mapping = {**(mapping if mapping is not None else tq.get_default_dynamic_quant_module_mappings()),
               **dynamic_quant_mappings()}
    return tq.quantize_dynamic(model, qconfig_spec, dtype, mapping, inplace)


def dynamic_quant_mappings() -> dict[type[nn.Module], type]:
    """For ``torch.ao.quantization.quantize_dynamic(..., mapping=...)``: lstmkit's class -> a converter whose
    ``from_float`` returns torch's quantised module for a plain lstmkit module (and raises for the rest)."""
    from torch.ao.quantization import get_default_dynamic_quant_module_mappings

    torch_mappings = get_default_dynamic_quant_module_mappings()
    return {ours: type(f"Quantized{ours.__name__}", (_ViaTorch,), {"twin": twin, "names": names,
                                                                     "quantized": torch_mappings[twin]})
            for ours, (twin, names) in TWINS.items()}


class _ViaTorch:
    """Converts a plain lstmkit module to torch's quantised module, through its torch.nn twin."""

    twin: type[nn.Module]
    names: tuple[str, ...]
    quantized: Any                                  # torch.ao.nn.quantized.dynamic's class (it has from_float)

    @classmethod
    def from_float(cls, mod: nn.Module, use_precomputed_fake_quant: bool = False):
        reason = _why_not_plain(mod)
        if reason:
            raise InputError(f"{type(mod).__name__} cannot be quantised: {reason}, and torch's quantised "
                             f"{cls.twin.__name__} computes the plain cell only (it would drop the difference). "
                             f"Leave it out of qconfig_spec (or set its qconfig to None) to keep it in float")
        twin = cls.twin(**{name: getattr(mod, name) for name in cls.names})
        twin.load_state_dict(mod.state_dict())      # the same names and shapes: lstmkit's parameters are torch's
        twin.qconfig = mod.qconfig  # type: ignore[assignment]
        return cls.quantized.from_float(twin)


def _why_not_plain(mod: nn.Module) -> str | None:
    """None when torch's kernel computes exactly what ``mod`` computes in eval mode, else what differs."""
    assert isinstance(mod, Recurrent | RecurrentCell)
    config = (RunConfig(mod.num_layers, mod.bidirectional, mod.dropout, False, mod.recurrent_dropout, mod.zoneout)
              if isinstance(mod, Recurrent) else RunConfig(1, False, 0.0, False, mod.recurrent_dropout, mod.zoneout,
                                                           single_step=True))
    if mod.recurrent_dropout > 0:
        return f"it has recurrent_dropout={mod.recurrent_dropout}"
    if getattr(mod, "proj_size", 0):
        # torch.nn.LSTM(proj_size=2) quantised by torch 2.13 fails at its first call ("The number of rows in the
        # packB should be equal to K"): refuse at conversion instead
        return f"it has proj_size={mod.proj_size}, which torch's quantised LSTM does not run"
    return torch_kernel.why_not(mod.cell, config)
