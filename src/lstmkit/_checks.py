"""Argument checks shared by every module: each raises before any computation and says what was expected,
what came and, where there is one, the fix."""

from __future__ import annotations

import math
import numbers

import torch
from torch.nn.utils.rnn import PackedSequence

from .errors import InputError, InputTypeError


def positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InputTypeError(f"`{name}` must be an int, got {type(value).__name__} ({value!r})")
    if value <= 0:
        raise InputError(f"`{name}` must be a positive int, got {value}")
    return int(value)


def flag(name: str, value) -> bool:
    if not isinstance(value, bool):
        raise InputTypeError(f"`{name}` must be True or False, got {type(value).__name__} ({value!r})")
    return value


def probability(name: str, value, *, upper_inclusive: bool) -> float:
    """A dropout-like probability in [0, 1] (or [0, 1) when 1 would drop everything forever)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InputTypeError(f"`{name}` must be a float, got {type(value).__name__} ({value!r})")
    value = float(value)
    ok = 0.0 <= value <= 1.0 if upper_inclusive else 0.0 <= value < 1.0
    if not ok:
        interval = "[0, 1]" if upper_inclusive else "[0, 1)"
        raise InputError(f"`{name}` must be a probability in {interval}, got {value}")
    return value


def finite_float(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InputTypeError(f"`{name}` must be a float, got {type(value).__name__} ({value!r})")
    if not math.isfinite(float(value)):
        raise InputError(f"`{name}` must be finite, got {value}")
    return float(value)


def sequence_input(x, *, input_size: int, weight: torch.Tensor, cell: bool = False,
                   batch_first: bool = False) -> None:
    """The checks every input passes: a float tensor (or PackedSequence) whose last dimension is `input_size`, on
    the parameters' device and (outside autocast) of their dtype; of rank 2 or 3 (a cell's: 1 or 2)."""
    packed_ok = not cell
    if isinstance(x, PackedSequence) and packed_ok:
        data = x.data
        if not isinstance(data, torch.Tensor) or data.dim() != 2:
            raise InputError(f"`input` is a PackedSequence whose data must be 2-D (N, {input_size}), "
                             f"got shape {tuple(getattr(data, 'shape', ()))}")
        packed_sequence(x)
    elif isinstance(x, torch.Tensor):
        data = x
        ranks = (2, 1) if cell else (3, 2)
        if data.dim() not in ranks:
            raise InputError(f"`input` must be {ranks[0]}-D (batched) or {ranks[1]}-D (unbatched), got "
                             f"{data.dim()}-D with shape {tuple(data.shape)}")
    else:
        expected = "a Tensor or PackedSequence" if packed_ok else "a Tensor"
        raise InputTypeError(f"`input` must be {expected}, got {type(x).__name__}")
    _float_like("input", data, weight)
    if data.shape[-1] != input_size:
        raise InputError(f"`input` has {data.shape[-1]} features in its last dimension but the module was built "
                         f"with input_size={input_size}; shape {tuple(data.shape)}")
    # An empty batch gives empty outputs, as in torch.nn; a sequence of no steps is an error there too.
    time_dim = None if cell else (1 if batch_first and data.dim() == 3 else 0)
    if time_dim is not None and not isinstance(x, PackedSequence) and data.shape[time_dim] == 0:
        raise InputError(f"`input` has no steps (shape {tuple(data.shape)}, time is dimension {time_dim}): a "
                         "sequence needs at least one step")


def packed_sequence(x: PackedSequence) -> None:
    """A PackedSequence whose bookkeeping is consistent, checked before anything reads it (torch's unpacking
    trusts it, and a hand-built one with a zero or growing batch size crashed the interpreter inside it)."""
    sizes, n = x.batch_sizes, x.data.shape[0]
    if not isinstance(sizes, torch.Tensor) or sizes.dim() != 1 or sizes.dtype != torch.int64 \
            or sizes.device.type != "cpu":
        what = f"{sizes.dtype} {sizes.dim()}-D on {sizes.device}" if isinstance(sizes, torch.Tensor) \
            else type(sizes).__name__
        raise InputError(f"`input.batch_sizes` must be a 1-D int64 tensor on the CPU (as pack_padded_sequence "
                         f"makes it), got {what}")
    if sizes.numel() == 0:
        raise InputError("`input.batch_sizes` is empty: a packed batch needs at least one step")
    if int(sizes.min()) <= 0:
        raise InputError(f"`input.batch_sizes` must be positive, got {sizes.tolist()}")
    if sizes.numel() > 1 and bool((sizes[1:] > sizes[:-1]).any()):
        raise InputError(f"`input.batch_sizes` must be non-increasing (sequences sorted longest first), got "
                         f"{sizes.tolist()}")
    if int(sizes.sum()) != n:
        raise InputError(f"`input.batch_sizes` sums to {int(sizes.sum())} but `input.data` has {n} rows")
    B = int(sizes[0])
    sorted_, unsorted = x.sorted_indices, x.unsorted_indices
    if sorted_ is None and unsorted is None:
        return
    if sorted_ is None or unsorted is None:
        raise InputError("`input.sorted_indices` and `input.unsorted_indices` must both be given or both be None")
    for name, idx in (("sorted_indices", sorted_), ("unsorted_indices", unsorted)):
        if not isinstance(idx, torch.Tensor) or idx.dtype != torch.int64 or tuple(idx.shape) != (B,):
            got = f"{idx.dtype} {tuple(idx.shape)}" if isinstance(idx, torch.Tensor) else type(idx).__name__
            raise InputError(f"`input.{name}` must be an int64 tensor of shape ({B},), got {got}")
    s, u = sorted_.cpu(), unsorted.cpu()
    if not torch.equal(s.sort().values, torch.arange(B)) or not torch.equal(s[u], torch.arange(B)):
        raise InputError(f"`input.sorted_indices` must be a permutation of 0..{B - 1} and "
                         "`input.unsorted_indices` its inverse")


def _float_like(name: str, t: torch.Tensor, weight: torch.Tensor) -> None:
    if not t.is_floating_point():
        raise InputTypeError(f"`{name}` must be a floating-point tensor, got dtype {t.dtype}; "
                             f"convert it with {name}.to({weight.dtype})")
    if t.device != weight.device:
        raise InputError(f"`{name}` is on {t.device} but the module's parameters are on {weight.device}; "
                         f"move one of them (module.to({str(t.device)!r}) or {name}.to({str(weight.device)!r}))")
    if t.dtype != weight.dtype and not torch.is_autocast_enabled(t.device.type):
        raise InputError(f"`{name}` has dtype {t.dtype} but the module's parameters are {weight.dtype}; "
                         f"convert the input ({name}.to({weight.dtype})) or the model (model.to({t.dtype}))")


def state_tensor(name: str, t, expected: tuple[int, ...], x: torch.Tensor, weight: torch.Tensor,
                 unbatched: bool, hint: str) -> None:
    """One initial state tensor (h0 or c0): a float tensor of exactly `expected` shape, like the input."""
    if not isinstance(t, torch.Tensor):
        raise InputTypeError(f"`{name}` must be a Tensor, got {type(t).__name__}")
    want_dim = len(expected)
    if t.dim() != want_dim:
        kind = "unbatched 2-D" if unbatched else "batched 3-D"
        raise InputError(f"`{name}` must be {want_dim}-D for {kind} input, got {t.dim()}-D with shape "
                         f"{tuple(t.shape)}")
    if tuple(t.shape) != tuple(expected):
        raise InputError(f"`{name}` must have shape {tuple(expected)} {hint}, got {tuple(t.shape)}")
    _float_like(name, t, weight)
    if t.dtype != x.dtype and not torch.is_autocast_enabled(t.device.type):
        raise InputError(f"`{name}` has dtype {t.dtype} but `input` has {x.dtype}; give both the same dtype")


def parameters(module: torch.nn.Module) -> None:
    """Every parameter has the first one's dtype and device (engines run them together; the fused engine would
    otherwise compute a float64 weight in float32). The recurrent modules register every parameter on themselves,
    so their own ``_parameters`` are all of them: 1.7 us a call for a cell, where ``named_parameters()`` took 4.8."""
    named = [(name, p) for name, p in module._parameters.items() if p is not None]
    first_name, first = named[0]
    for name, p in named[1:]:
        if p.dtype != first.dtype or p.device != first.device:
            raise InputError(f"parameter `{name}` is {p.dtype} on {p.device} but `{first_name}` is {first.dtype} "
                             f"on {first.device}; give the module one dtype and device (module.to(...))")


def not_left_float(module, qconfig) -> None:
    """Raises when ``module`` was marked for quantisation (``qconfig`` not None) but is still the float module: the
    quantisation that marked it had no mapping for lstmkit's classes (torch's match classes exactly), and running
    it in float would hide that. Called where torch's convert removes the mark, and at each call."""
    if qconfig is not None:
        raise InputError(f"this {type(module).__name__} was marked for quantisation (it has a qconfig) but not "
                         "quantised: torch's quantisation mappings match classes exactly and do not know lstmkit's. "
                         "Use lstmkit.quantization.quantize_dynamic (or pass "
                         "mapping=lstmkit.quantization.dynamic_quant_mappings()), or set its qconfig to None to keep "
                         "it in float")
