"""Engines: interchangeable ways to run a cell over a batch of sequences.

Every engine has the same signature, :func:`lstmkit.engines.reference.run`'s::

    run(cell, seq, hx, weights, config, *, trace) -> (output, state, records)

``seq``/``output`` are :class:`lstmkit.sequences.Sequences`; ``hx``/``state`` tuples of ``(L*D, B, S)`` tensors
(one per entry of ``cell.states``); ``weights[layer][direction]`` a :class:`lstmkit.cells.Weights`; ``records``
is None unless ``trace``, else ``records[layer][direction]`` is a tuple of time-major ``(T, B, .)`` tensors in
the order of ``cell.records``, zero past each sequence's end.

- ``reference``: the readable per-step loop over ``cell.step``; the spec every other engine is tested against.
- ``torch``: torch's own fused kernels (oneDNN on CPU, cuDNN on GPU) for the cells that are exactly torch's.
"""

from .config import RunConfig

__all__ = ["RunConfig"]
