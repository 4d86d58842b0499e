"""ONNX export of models that contain lstmkit modules (the ``onnx`` extra: ``pip install lstmkit[onnx]``).

``lstmkit.onnx.export(model, args, f, **kwargs)`` is ``torch.onnx.export`` (the default, ``torch.export``-based
exporter) with lstmkit's modules in their export form and their translations: LSTM layers become ONNX LSTM
nodes (peepholes ``P``, ``coupled`` as ``input_forget=1``), GRU layers GRU nodes (``linear_before_reset=1``), RNN
layers RNN nodes; what the operators cannot express (``layer_norm``, ``proj_size``, zoneout's eval mix, custom
cells) an ONNX ``Scan`` over a dynamic number of steps. ``kwargs`` go to ``torch.onnx.export`` (``dynamic_shapes``,
``input_names``, ``output_names``, ...).

``lstmkit.onnx.padded(module, x, lengths, hx)`` runs a padded batch with per-sequence lengths (the result of
packing, running and padding again); exported, ``lengths`` becomes ONNX's ``sequence_lens``. A
``PackedSequence`` itself cannot be exported: ``torch.export`` cannot trace packing, whose output shape depends on
the lengths' values.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from ..errors import InputError, InputTypeError
from .mode import active, exporting


def export(model: torch.nn.Module, args: tuple, f=None, **kwargs: Any):
    """``torch.onnx.export(model, args, f, dynamo=True, **kwargs)`` with lstmkit modules exported as ONNX
    LSTM/GRU/RNN nodes or Scans. Returns the ``torch.onnx.ONNXProgram`` (saved to ``f`` when given)."""
    from ..modules.recurrent import Recurrent
    from .graph import check_exportable
    from .translate import translation_table

    for module in model.modules():                  # before torch.export starts, whose errors wrap ours
        if isinstance(module, Recurrent):
            check_exportable(module)
    table = {**translation_table(), **kwargs.pop("custom_translation_table", {})}
    kwargs.setdefault("verbose", False)
    with exporting():
        try:
            return torch.onnx.export(model, args, f, dynamo=True, custom_translation_table=table, **kwargs)
        except Exception as err:
            # torch.onnx wraps every error in its own; ours (a module that cannot be exported) surface as they are
            cause: BaseException | None = err
            while cause is not None and not isinstance(cause, InputError | InputTypeError):
                cause = cause.__cause__
            if cause is not None:
                raise cause from None
            raise


def padded(module, x: Tensor, lengths: Tensor, hx=None):
    """``module`` over a padded batch ``x`` whose sequence ``b`` is ``lengths[b]`` steps long: the output padded
    with zeros to ``x``'s length (same layout as ``x``) and each sequence's final state at its own last step.
    Eagerly it packs, runs and pads (``enforce_sorted=False``); exported, ``lengths`` is ONNX's ``sequence_lens``."""
    from . import graph

    if active():
        return graph.forward(module, x, hx, lengths)
    T = x.shape[1] if module.batch_first else x.shape[0]
    packed = pack_padded_sequence(x, lengths.cpu(), batch_first=module.batch_first, enforce_sorted=False)
    out, state = module(packed, hx)
    out, _ = pad_packed_sequence(out, batch_first=module.batch_first, total_length=T)
    return out, state


__all__ = ["export", "padded", "exporting", "active"]
