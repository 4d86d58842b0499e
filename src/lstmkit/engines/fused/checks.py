"""The argument checks the fused engine's layer functions share (:mod:`.lstm`, :mod:`.gru_rnn`).

They run before any work, so a malformed call raises :class:`lstmkit.InputError` naming the argument instead of
reaching the C++ side.
"""

from __future__ import annotations

import torch
from torch import Tensor

from ...errors import InputError, InputTypeError

DTYPES = (torch.float32, torch.float64, torch.bfloat16)


def expect(name: str, t, shape: tuple[int, ...], dtype: torch.dtype | None, fix: str = "") -> None:
    """`t` is a CPU tensor of `shape` (and `dtype`, when given), or InputError names `name`."""
    if not isinstance(t, Tensor):
        raise InputTypeError(f"`{name}` must be a Tensor of shape {shape}, got {type(t).__name__}")
    if tuple(t.shape) != shape:
        raise InputError(f"`{name}` must have shape {shape}, got {tuple(t.shape)}{fix}")
    if dtype is not None and t.dtype != dtype:
        raise InputError(f"`{name}` must have dtype {dtype} like `x`, got {t.dtype}")
    if t.device.type != "cpu":
        raise InputError(f"`{name}` is on {t.device}; the fused engine runs on CPU only")


def check_x(x) -> tuple[int, int, int]:
    """(T, B, I) of a layer's input, after checking it is a 3-d tensor of a dtype the engine runs."""
    if not isinstance(x, Tensor) or x.dim() != 3:
        raise InputError(f"`x` must be a (T, B, I) Tensor, got {getattr(x, 'shape', type(x).__name__)}")
    if x.dtype not in DTYPES:
        raise InputError(f"`x` must be float32, float64 or bfloat16, got {x.dtype}")
    T, B, I = x.shape
    return T, B, I


def check_lengths(lengths: Tensor | None, T: int, B: int) -> Tensor | None:
    """None, or int64 (B,) lengths in [0, T], made contiguous for the C++ side."""
    if lengths is None:
        return None
    expect("lengths", lengths, (B,), torch.int64)
    if B and (int(lengths.min()) < 0 or int(lengths.max()) > T):
        raise InputError(f"`lengths` must lie in [0, T={T}], got min {int(lengths.min())}, "
                         f"max {int(lengths.max())}")
    return lengths.contiguous()


def is_probability(zoneout) -> bool:
    """Whether `zoneout` is an eval-mode probability (a number, not a mask); raises if it is out of [0, 1)."""
    if not isinstance(zoneout, (float, int)) or isinstance(zoneout, bool):
        return False
    if not 0.0 <= zoneout < 1.0:
        raise InputError(f"`zoneout` (={zoneout}) as a probability must lie in [0, 1)")
    return True


def check_mask(mask: Tensor | None, B: int, R: int, acc: torch.dtype) -> Tensor | None:
    """None, or the (B, R) recurrent dropout mask in the pointwise math's dtype."""
    if mask is None:
        return None
    expect("recurrent_mask", mask, (B, R), None)
    return mask.to(acc).contiguous()


def backward_follows(*tensors: Tensor | None) -> bool:
    """Whether autograd will want a backward of a call on these tensors (None entries are ignored)."""
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


def check_edits(edits: dict[str, tuple[Tensor, Tensor]] | None, sizes: dict[str, int], T: int, B: int,
                acc: torch.dtype) -> tuple[list[Tensor | None], list[Tensor | None]]:
    """Interventions (:mod:`lstmkit.interventions`) as the C++ side takes them: the lists (keep, value) with one
    entry per record in the order of ``sizes`` ({record: S}), None where a record has no edit; both empty for
    none. Each edit is (T, B, S), made contiguous in the pointwise math's dtype."""
    if not edits:
        return [], []
    unknown = sorted(set(edits) - set(sizes))
    if unknown:
        raise InputError(f"`edits` name records this cell does not have: {unknown}; it has {list(sizes)}")
    keeps: list[Tensor | None] = []
    values: list[Tensor | None] = []
    for name, S in sizes.items():
        if name not in edits:
            keeps.append(None)
            values.append(None)
            continue
        keep, value = edits[name]
        expect(f"edits[{name!r}] keep", keep, (T, B, S), None)
        expect(f"edits[{name!r}] value", value, (T, B, S), None)
        keeps.append(keep.to(acc).contiguous())
        values.append(value.to(acc).contiguous())
    return keeps, values
