"""The one form in which engines receive and return a batch of sequences, and the one object that knows the
form the caller used.

Users hand a module a batched tensor (time- or batch-major), an unbatched one, or a ``PackedSequence``.
:class:`InputForm` records which, turns the input into :class:`Sequences` (what engines see) and maps every
result back (output, final states, trace records, lengths), so neither engines nor modules repeat that work.
Packed batches stay in their sorted order (longest first) inside the engines, as torch's own kernels keep them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence, pad_packed_sequence


@dataclass
class Sequences:
    """Either ``padded`` (``(T, B, F)``, or ``(B, T, F)`` when ``batch_first``) with every sequence ``T`` long, or
    ``data``/``batch_sizes`` of a sorted packed batch. :meth:`time_major` and :meth:`lengths` give the padded
    view of either; :meth:`packed_data` the packed one. Conversions are made once and cached."""

    padded: Tensor | None = None
    batch_first: bool = False
    data: Tensor | None = None
    batch_sizes: Tensor | None = None

    @property
    def is_packed(self) -> bool:
        return self.batch_sizes is not None

    @property
    def batch(self) -> int:
        if self.batch_sizes is not None:
            return int(self.batch_sizes[0])
        return self.time_major().shape[1]

    @property
    def steps(self) -> int:
        if self.batch_sizes is not None:
            return len(self.batch_sizes)
        return self.time_major().shape[0]

    def time_major(self) -> Tensor:
        """(T, B, F), zero past each sequence's end."""
        if self.padded is None:
            self.padded, _ = pad_packed_sequence(PackedSequence(self.packed_data(), self.batch_sizes))
            self.batch_first = False
        return self.padded.transpose(0, 1) if self.batch_first else self.padded

    def values(self) -> Tensor:
        """The batch's values as they are (padded or packed), e.g. for their device and dtype."""
        return self.padded if self.padded is not None else self.packed_data()

    def lengths(self) -> Tensor | None:
        """(B,) int64 on the CPU, longest first; None when every sequence has all T steps."""
        if self.batch_sizes is None:
            return None
        # Sequence b is alive at step t while b < batch_sizes[t]; its length counts those steps.
        return (torch.arange(self.batch).unsqueeze(1) < self.batch_sizes.unsqueeze(0)).sum(1)   # (B,)

    def packed_data(self) -> Tensor:
        if self.data is None:
            raise AssertionError("packed_data() of an unpacked batch")
        return self.data

    def like(self, output: Tensor) -> Sequences:
        """The engine's time-major padded `output` (T, B, F) in this batch's form."""
        lengths = self.lengths()
        if lengths is not None:
            return Sequences(data=pack_padded_sequence(output, lengths).data, batch_sizes=self.batch_sizes)
        if self.batch_first:
            return Sequences(padded=output.transpose(0, 1), batch_first=True)
        return Sequences(padded=output)


def step_mask(lengths: Tensor | None, t: int, like: Tensor) -> Tensor | None:
    """(B, 1) True where step t lies inside the sequence, or None when all sequences are full length."""
    if lengths is None:
        return None
    return (lengths.to(like.device) > t).unsqueeze(-1)


def reverse_within(x: Tensor, lengths: Tensor | None) -> Tensor:
    """Reverse each sequence of time-major `x` (T, B, ...) within its own length; padding stays in place.
    Applying it twice gives `x` back, so reverse directions run as forward ones on flipped input."""
    if lengths is None:
        return x.flip(0)
    T = x.shape[0]
    t = torch.arange(T).unsqueeze(1)                                                # (T, 1)
    n = lengths.unsqueeze(0)                                                        # (1, B)
    index = torch.where(t < n, n - 1 - t, t).to(x.device)                           # (T, B)
    index = index.view(T, -1, *([1] * (x.dim() - 2))).expand_as(x)
    return x.gather(0, index)


def valid_steps(lengths: Tensor | None, T: int, device) -> Tensor | None:
    """(T, B, 1) True inside each sequence, or None when all are full length."""
    if lengths is None:
        return None
    return (torch.arange(T).unsqueeze(1) < lengths.unsqueeze(0)).unsqueeze(-1).to(device)


@dataclass(frozen=True)
class InputForm:
    """How the caller handed a batch to a module: ``batch_first``, ``unbatched`` (a 2-d tensor) or a
    ``PackedSequence`` (``packed`` is the caller's, kept for its batch sizes and sort order)."""

    batch_first: bool
    unbatched: bool = False
    packed: PackedSequence | None = None

    @classmethod
    def of(cls, input: Tensor | PackedSequence, batch_first: bool) -> InputForm:
        if isinstance(input, PackedSequence):
            return cls(batch_first, packed=input)
        return cls(batch_first, unbatched=input.dim() == 2)

    @property
    def _batch_dim(self) -> int:
        return 0 if self.batch_first else 1

    def sequences(self, input: Tensor | PackedSequence) -> Sequences:
        """The engines' form of `input`."""
        if isinstance(input, PackedSequence):
            return Sequences(data=input.data, batch_sizes=input.batch_sizes)
        x = input.unsqueeze(self._batch_dim) if self.unbatched else input
        return Sequences(padded=x, batch_first=self.batch_first)

    def states_in(self, hx: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        """The caller's initial states (L*D, [B,] S) in engine order (batched; sorted when packed)."""
        if self.unbatched:
            return tuple(h.unsqueeze(1) for h in hx)
        if self.packed is not None and self.packed.sorted_indices is not None:
            return tuple(h.index_select(1, self.packed.sorted_indices) for h in hx)
        return hx

    def states_out(self, state: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
        """Final states (L*D, B, S) in the caller's batch order and form."""
        if self.unbatched:
            return tuple(s.squeeze(1) for s in state)
        if self.packed is not None and self.packed.unsorted_indices is not None:
            return tuple(s.index_select(1, self.packed.unsorted_indices) for s in state)
        return state

    def output(self, out: Sequences) -> Tensor | PackedSequence:
        """The engine's output in the caller's form (a PackedSequence with the caller's sort order for packed)."""
        if self.packed is not None:
            p = self.packed
            return PackedSequence(out.packed_data(), p.batch_sizes, p.sorted_indices, p.unsorted_indices)
        padded = out.values()                       # in this form's layout: engines keep the batch's batch_first
        return padded.squeeze(self._batch_dim) if self.unbatched else padded

    def record(self, r: Tensor) -> Tensor:
        """A time-major (T, B, .) record laid out like the caller's output (padded for packed input)."""
        if self.packed is not None and self.packed.unsorted_indices is not None:
            r = r.index_select(1, self.packed.unsorted_indices)
        if self.unbatched:
            return r.squeeze(1)
        return r.transpose(0, 1) if self.batch_first else r

    def lengths(self, seq: Sequences) -> Tensor | None:
        """(B,) sequence lengths in the caller's batch order for packed input, else None."""
        lengths = seq.lengths()
        if lengths is not None and self.packed is not None and self.packed.unsorted_indices is not None:
            lengths = lengths[self.packed.unsorted_indices]
        return lengths
