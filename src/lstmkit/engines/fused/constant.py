"""Marking a function's result as a constant of a torch.compile graph, without importing torch._dynamo.

``torch.compiler.assume_constant_result(fn)`` imports torch._dynamo to set one attribute on ``fn``, and that import
costs ~3 s: as a decorator at import time it made ``import lstmkit`` take 6.6 s instead of 3.6 (every lab worker,
every CLI call paid it). :func:`constant_under_compile` sets the same attribute, which dynamo reads when it traces a
call to ``fn`` (torch 2.4-2.13: ``torch/_dynamo/decorators.py`` sets it, ``variables/functions.py`` reads it);
tests/test_compile_export.py checks both that this is what torch's decorator does and that the marked functions
leave no graph break.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

F = TypeVar("F", bound=Callable)

MARK = "_dynamo_marked_constant"


def constant_under_compile(fn: F) -> F:
    """``fn``, marked so that torch.compile calls it while tracing and takes its result as a constant."""
    setattr(fn, MARK, True)
    return fn
