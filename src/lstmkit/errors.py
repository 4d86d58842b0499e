"""The errors lstmkit raises for a malformed construction or call.

torch.nn raises ``RuntimeError`` for many shape mistakes and ``ValueError``/``TypeError`` for others. lstmkit
checks every argument before any computation and raises one of the two classes below, which derive from both the
Python class that names the mistake and ``RuntimeError``, so ``except RuntimeError`` written against torch.nn keeps
catching what it caught before.
"""


class InputError(ValueError, RuntimeError):
    """A value is out of range or a tensor has the wrong shape, dtype or device."""


class InputTypeError(TypeError, RuntimeError):
    """An argument has the wrong Python type (a bare tensor where a tuple belongs, a float size, ...)."""
