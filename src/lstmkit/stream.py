"""``Stream``: a recurrent module over input that arrives a chunk at a time (real-time audio, sensor data, tokens).

It carries each stream's state from one call to the next, so feeding a sequence in chunks of any lengths gives
exactly what one call on the whole sequence gives (the tests check it for every module and option)::

    stream = lstmkit.Stream(lstm, batch=2)      # two independent streams
    y1 = stream(x[:3])                           # (3, 2, H): steps 0-2 of both
    y2 = stream(x[3:4])                          # (1, 2, H): step 3
    stream.reset(1)                              # stream 1 starts again from its initial state
    h_n, c_n = stream.state                      # torch.nn's form of the current state

A causal stream needs every output to depend only on the past, so bidirectional modules cannot stream (their
backward direction reads the future) and raise. Chunks are batched tensors in the module's layout: ``(t, B, I)``,
or ``(B, t, I)`` with ``batch_first``. Each call runs the module's own ``forward`` with the carried state, so the
engine, autocast and gradients behave as they do there; recurrent dropout (one mask per sequence) in training
mode would draw a new mask per chunk, so it raises.

Short chunks (up to ``SHORT`` steps) in eval mode outside autocast skip the module's call machinery (input-form
handling, engine choice) and run the reference engine's loop over the cell's equations directly: at one step per
call that machinery, and the fixed cost of torch's and the fused engine's kernels, are most of the time
(``lstmkit bench`` has the rows). The results are the same to rounding (every engine is tested against that
loop).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .engines.config import Masks
from .engines.reference import run_direction
from .errors import InputError, InputTypeError
from .modules.recurrent import Recurrent

SHORT = 4       # chunks of at most this many steps run the cell's loop directly (see the module docstring)


class Stream:
    """Carries ``module``'s state across calls for ``batch`` independent streams, starting (and reset) at
    ``hx`` (torch.nn's form: LSTM ``(h_0, c_0)``, GRU/RNN ``h_0``; zeros by default)."""

    def __init__(self, module: Recurrent, batch: int = 1, hx=None):
        if not isinstance(module, Recurrent):
            raise InputTypeError(f"`module` must be an lstmkit LSTM, GRU, RNN or Recurrent, got "
                                 f"{type(module).__name__}")
        if module.bidirectional:
            raise InputError("a bidirectional module cannot stream: its reverse direction reads steps that have "
                             "not arrived yet; stream a unidirectional module (bidirectional=False)")
        if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
            raise InputError(f"`batch` must be a positive int (the number of streams), got {batch!r}")
        self.module = module
        self.batch = batch
        weight: Tensor = getattr(module, module._flat_weights_names[0])
        L, sizes = module.num_layers, module.cell.state_sizes()
        if hx is None:
            initial = tuple(torch.zeros(L, batch, s, dtype=weight.dtype, device=weight.device) for s in sizes)
        else:
            probe = torch.zeros(1, batch, module.input_size, dtype=weight.dtype, device=weight.device)
            initial = module._check_states(hx, module._state_names(), sizes, probe, weight, batch, 1, False)
        self._initial = tuple(s.detach().clone() for s in initial)
        self._state = tuple(s.clone() for s in self._initial)

    @property
    def state(self):
        """The current state of every stream in torch.nn's form (``(h, c)`` for an LSTM, ``h`` otherwise):
        ``(L, B, S)`` each."""
        return self._state if len(self._state) > 1 else self._state[0]

    def reset(self, index: int | None = None) -> None:
        """Stream ``index`` (all streams when None) back to its initial state."""
        if index is None:
            self._state = tuple(s.clone() for s in self._initial)
            return
        if isinstance(index, bool) or not isinstance(index, int) or not -self.batch <= index < self.batch:
            raise InputError(f"`index` must be a stream index in [0, {self.batch}) or None (all), got {index!r}")
        state = tuple(s.clone() for s in self._state)                # a new tensor: earlier results keep theirs
        for s, s0 in zip(state, self._initial, strict=True):
            s[:, index] = s0[:, index]
        self._state = state

    def __call__(self, x: Tensor) -> Tensor:
        """The next chunk of every stream, ``(t, B, I)`` (``(B, t, I)`` with ``batch_first``), any ``t >= 1``:
        returns the module's output for those steps, ``(t, B, R)`` (``(B, t, R)``)."""
        if not isinstance(x, Tensor):
            raise InputTypeError(f"a chunk must be a Tensor, got {type(x).__name__}")
        batch_dim = 0 if self.module.batch_first else 1
        if x.dim() != 3 or x.shape[batch_dim] != self.batch:
            layout = "(B, t, I)" if self.module.batch_first else "(t, B, I)"
            raise InputError(f"a chunk must be 3-D {layout} with B = {self.batch} streams, got shape "
                             f"{tuple(x.shape)}")
        if self.module.training and self.module.recurrent_dropout > 0:
            raise InputError(f"recurrent_dropout={self.module.recurrent_dropout} in training mode draws one mask "
                             "per call, so a stream's chunks would not be one sequence; call module.eval()")
        module = self.module
        t = x.shape[1 if module.batch_first else 0]
        if t <= SHORT and not module.training and not torch.is_autocast_enabled(x.device.type):
            return self._short(x)
        out, state = module(x, self.state)
        self._state = state if isinstance(state, tuple) else (state,)
        return out

    def _short(self, x: Tensor) -> Tensor:
        """The reference engine's loop, layer by layer, on a short chunk (eval mode: no masks, no dropout)."""
        module = self.module
        weight: Tensor = getattr(module, module._flat_weights_names[0])
        if x.shape[-1] != module.input_size or x.dtype != weight.dtype or x.device != weight.device:
            raise InputError(f"a chunk must have {module.input_size} features, dtype {weight.dtype} and device "
                             f"{weight.device} (the module's), got shape {tuple(x.shape)}, {x.dtype} on {x.device}")
        config = module._config()
        y = x.transpose(0, 1) if module.batch_first else x                     # (t, B, I)
        finals = []
        for layer, row in enumerate(module._weights()):
            y, state, _ = run_direction(module.cell, y, None, tuple(s[layer] for s in self._state), row[0],
                                        Masks(), config, False)
            finals.append(state)
        self._state = tuple(torch.stack(s) for s in zip(*finals, strict=True))
        return y.transpose(0, 1) if module.batch_first else y
