"""What a positive integer, a probability, a finite number is, written once for the lab's configs, the ``lstmkit``
command line and the benchmark.

A config checks a value it was given (``check("steps", 0, POSITIVE_INT)`` raises "`steps` must be a positive
integer, got 0"); the command line parses a string into one (``argument_type(POSITIVE_INT)("0")`` raises
argparse's error "expected a positive integer, got 0"). Both say what was expected in the same words.

The paths a command writes follow rules too (:func:`check_output_folder`, :func:`check_output_file`): they are
checked before any work, so a bad ``--out`` or ``--json`` costs a second, not a whole run.

This module imports nothing of lstmkit's, so the command line and the benchmark can both use it without importing
each other.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Rule:
    """``expected`` completes "must be ..." and "expected ...". ``kind`` is the Python type a value must have
    (and a command-line string is parsed as); ``holds(value)`` says whether a value of that type is allowed."""

    expected: str
    kind: type
    holds: Callable[[Any], bool]


POSITIVE_INT = Rule("a positive integer", int, lambda v: v > 0)
NON_NEGATIVE_INT = Rule("a non-negative integer", int, lambda v: v >= 0)
POSITIVE_NUMBER = Rule("a positive finite number", float, lambda v: math.isfinite(v) and v > 0)
FINITE_NUMBER = Rule("a finite number", float, math.isfinite)
PROBABILITY = Rule("a probability in [0, 1)", float, lambda v: 0.0 <= v < 1.0)
# Adam moves each weight by about lr per step: beyond 10, one step can overflow float32 weights in a few steps.
MAX_LR = 10.0
LEARNING_RATE = Rule(f"a finite number in (0, {MAX_LR:g}]", float, lambda v: math.isfinite(v) and 0 < v <= MAX_LR)
# torch.manual_seed takes a 64-bit signed integer
SEED = Rule("an integer in [0, 2**63)", int, lambda v: 0 <= v < 2**63)


def one_of(names: Sequence[str]) -> Rule:
    """A string that is one of ``names``."""
    return Rule(f"one of {', '.join(names)}", str, lambda v: v in names)


def _has_kind(value, kind: type) -> bool:
    if isinstance(value, bool):  # True is an int to Python, never a step count or a learning rate to us
        return False
    return isinstance(value, int | float) if kind is float else isinstance(value, kind)


def check(name: str, value, rule: Rule):
    """``value`` if it follows ``rule``; otherwise a ValueError naming ``name``, what was expected and what came."""
    if not (_has_kind(value, rule.kind) and rule.holds(value)):
        raise ValueError(f"`{name}` must be {rule.expected}, got {value!r}")
    return value


def argument_type(rule: Rule) -> Callable[[str], Any]:
    """An argparse ``type=`` that parses a string as ``rule.kind`` and checks it against ``rule``."""

    def parse(text: str):
        try:
            value = rule.kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {rule.expected}, got {text!r}") from None
        if not rule.holds(value):
            raise argparse.ArgumentTypeError(f"expected {rule.expected}, got {text}")
        return value

    parse.__name__ = rule.expected  # what argparse would name the type in its own messages
    return parse


def check_output_folder(name: str, path) -> None:
    """Raise a ValueError naming ``name`` unless ``path`` is a folder, or can be made one, that we may write in."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{name} {path} is a file, expected a folder")
    _check_writable_parent(name, path, path)


def check_output_file(name: str, path) -> None:
    """Raise a ValueError naming ``name`` unless ``path`` can be written as a file: its folder exists and is
    writable, and ``path`` is not a folder."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{name} {path} is a folder, expected a file name")
    folder = path.absolute().parent
    if not folder.is_dir():
        raise ValueError(f"{name} {path}: the folder {folder} does not exist" if not folder.exists() else
                         f"{name} {path} is under {folder}, which is a file, not a folder")
    _check_writable_parent(name, path, folder)


def _check_writable_parent(name: str, path: Path, folder: Path) -> None:
    existing = folder.absolute()
    while not existing.exists():  # the nearest folder that exists is where the new ones would be made
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(f"{name} {path} is under {existing}, which is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"{name} {path}: cannot write in {existing} (permission denied)")
