"""The ``type=`` of every lab option: the value rules of :mod:`lstmkit._rules` (which the lab's configs check
too), and the names the command line offers.

The names are written here rather than imported from the lab so that building the parser (``lstmkit --help``,
``lstmkit bench``) imports none of the lab; ``tests/lab/test_lab_cli.py`` checks they match the lab's.
"""

from __future__ import annotations

import argparse

from .._rules import (
    FINITE_NUMBER,
    LEARNING_RATE,
    NON_NEGATIVE_INT,
    POSITIVE_INT,
    POSITIVE_NUMBER,
    PROBABILITY,
    SEED,
    argument_type,
)

TASK_NAMES = ("temporal-order", "adding", "adding-1997", "copy", "recall", "reber", "digits", "permuted-digits",
              "sunspots")
MODEL_NAMES = ("rnn", "gru", "lstm")

positive_int = argument_type(POSITIVE_INT)
non_negative_int = argument_type(NON_NEGATIVE_INT)
positive_float = argument_type(POSITIVE_NUMBER)
finite_float = argument_type(FINITE_NUMBER)
probability = argument_type(PROBABILITY)
learning_rate = argument_type(LEARNING_RATE)
seed_int = argument_type(SEED)


def int_list(text: str) -> list[int]:
    """Comma-separated positive integers: ``5,10,20``."""
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        values = []
    if not values or not all(POSITIVE_INT.holds(v) for v in values):
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers, got {text!r}")
    return values


def model_list(text: str) -> list[str]:
    """Comma-separated model names: ``rnn,lstm``."""
    names = text.split(",")
    bad = [n for n in names if n not in MODEL_NAMES]
    if bad:
        raise argparse.ArgumentTypeError(f"unknown model {bad[0]!r}; choose from {', '.join(MODEL_NAMES)}")
    return names
