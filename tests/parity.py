"""Helpers that run an lstmkit module and its torch.nn twin on the same call and compare everything."""

from __future__ import annotations

import torch
from torch.nn.utils.rnn import PackedSequence, pack_padded_sequence

import lstmkit

TOL = {torch.float32: dict(atol=1e-5, rtol=1e-5), torch.float64: dict(atol=1e-10, rtol=1e-10)}


def twins(kind: str, dtype=torch.float32, seed=0, backend="auto", **kw):
    """(lstmkit module, torch.nn module) built from the same seed; their parameters must already agree."""
    torch.manual_seed(seed)
    ours = getattr(lstmkit, kind)(**kw, dtype=dtype, backend=backend)
    torch.manual_seed(seed)
    theirs = getattr(torch.nn, kind)(**kw, dtype=dtype)
    return ours, theirs


def make_input(form: str, T: int, B: int, I: int, batch_first: bool, dtype, seed=1):
    """form: 'batched', 'unbatched', 'packed' (sorted lengths) or 'packed_unsorted'."""
    g = torch.Generator().manual_seed(seed)
    if form == "unbatched":
        return torch.randn(T, I, generator=g, dtype=dtype)
    x = torch.randn(B, T, I, generator=g, dtype=dtype) if batch_first else torch.randn(T, B, I, generator=g,
                                                                                        dtype=dtype)
    if form == "batched":
        return x
    lengths = torch.randint(1, T + 1, (B,), generator=g)
    lengths[0] = T
    if form == "packed":
        lengths = lengths.sort(descending=True).values
    return pack_padded_sequence(x, lengths, batch_first=batch_first, enforce_sorted=(form == "packed"))


def make_states(kind, module, form, B, dtype, seed=2):
    g = torch.Generator().manual_seed(seed)
    D = 2 if module.bidirectional else 1
    L = module.num_layers * D
    R = module.proj_size or module.hidden_size
    shape = lambda size: (L, size) if form == "unbatched" else (L, B, size)  # noqa: E731
    h = torch.randn(shape(R), generator=g, dtype=dtype)
    if kind == "LSTM":
        return h, torch.randn(shape(module.hidden_size), generator=g, dtype=dtype)
    return h


def _leaves(x, hx):
    data = x.data if isinstance(x, PackedSequence) else x
    leaves = [data] + (list(hx) if isinstance(hx, tuple) else [hx] if hx is not None else [])
    return leaves


def _with_grad(x, hx):
    """Fresh leaf copies of x (tensor or packed) and hx that require grad."""
    if isinstance(x, PackedSequence):
        x = PackedSequence(x.data.clone().requires_grad_(), x.batch_sizes, x.sorted_indices, x.unsorted_indices)
    else:
        x = x.clone().requires_grad_()
    if isinstance(hx, tuple):
        hx = tuple(h.clone().requires_grad_() for h in hx)
    elif hx is not None:
        hx = hx.clone().requires_grad_()
    return x, hx


def _flat(out):
    """Every tensor of a module's result, in order."""
    if isinstance(out, PackedSequence):
        return [out.data]
    if isinstance(out, torch.Tensor):
        return [out]
    return [t for o in out for t in _flat(o)]


def run_and_grads(module, x, hx):
    x, hx = _with_grad(x, hx)
    out = module(x, hx) if hx is not None else module(x)
    tensors = _flat(out)
    g = torch.Generator().manual_seed(3)
    loss = sum((t * torch.randn(t.shape, generator=g, dtype=t.dtype)).sum() for t in tensors)
    inputs = _leaves(x, hx) + list(module.parameters())
    grads = torch.autograd.grad(loss, inputs, allow_unused=True)
    return [t.detach() for t in tensors], grads


def assert_close_or_unused(got, want, tol: float) -> None:
    """Pairwise assert_close of two lists of outputs and gradients; where one side has no gradient (None, an input
    the call did not use), the other must be None or all zero."""
    for a, b in zip(got, want, strict=True):
        if a is None or b is None:
            other = a if a is not None else b
            assert other is None or not other.any()
        else:
            torch.testing.assert_close(a.to(b.dtype), b, atol=tol, rtol=tol)


def assert_same_call(ours, theirs, x, hx, dtype):
    out_a, grads_a = run_and_grads(ours, x, hx)
    out_b, grads_b = run_and_grads(theirs, x, hx)
    assert len(out_a) == len(out_b)
    for a, b in zip(out_a, out_b, strict=True):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, **TOL[dtype])
    for a, b in zip(grads_a, grads_b, strict=True):
        if a is None or b is None:
            assert a is None and b is None or (a if a is not None else b).abs().max() == 0
            continue
        torch.testing.assert_close(a, b, **TOL[dtype])
