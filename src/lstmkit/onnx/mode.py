"""Whether lstmkit modules are being exported to ONNX right now (inside :func:`lstmkit.onnx.export`): then their
``forward`` runs its export form (``graph.py``). A plain flag, not ``torch.compiler.is_exporting()``, so that
``torch.export`` for other purposes sees the modules' ordinary forward."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

_active = False


def active() -> bool:
    return _active


@contextmanager
def exporting() -> Iterator[None]:
    """lstmkit modules take their ONNX export form inside this block."""
    global _active
    previous, _active = _active, True
    try:
        yield
    finally:
        _active = previous
