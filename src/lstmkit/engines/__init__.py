"""Engines: interchangeable ways to run a cell over a batch of sequences, and the policy that picks one.

Every engine module is an :class:`.base.Engine`: ``NAME``, ``why_not(cell, config, x, trace=...)`` and
``run(cell, seq, hx, weights, config, trace=...)`` with one signature (see :mod:`.base`).

- ``reference``: the readable per-step loop over ``cell.step``; the spec every other engine is tested against.
- ``torch``: torch's own fused kernels (oneDNN on CPU, cuDNN on GPU) for the cells that are exactly torch's.
- ``fused``: lstmkit's compiled CPU engine (:mod:`.fused`), every LSTM variant, GRU and RNN.

:func:`choose` (:mod:`.policy`) is the one place that decides which runs a call.
"""

from . import fused, policy, reference, torch_kernel
from .base import Engine
from .config import RunConfig
from .policy import BACKENDS, ENGINES, check_backend, choose

__all__ = ["BACKENDS", "ENGINES", "Engine", "RunConfig", "check_backend", "choose", "fused", "policy", "reference",
           "torch_kernel"]
