"""The lab subcommands need the ``lab`` extra: say so in one line before any work starts.

Without the check a missing package surfaces late, as a ModuleNotFoundError traceback (from a worker process, for
``demo`` and ``sweep``). The packages are looked up with ``importlib.util.find_spec``, which imports nothing.
"""

from __future__ import annotations

import importlib.util

from .usage import UsageError

# module: package, for every package of the `lab` extra in pyproject.toml ([project.optional-dependencies]).
LAB_EXTRA = {"safetensors": "safetensors", "tqdm": "tqdm", "matplotlib": "matplotlib", "sklearn": "scikit-learn"}


def require_lab_extra(command: str) -> None:
    """Raise a UsageError (one line, exit status 2) naming what is missing if any package of the extra is."""
    missing = [package for module, package in LAB_EXTRA.items() if importlib.util.find_spec(module) is None]
    if missing:
        verb = "is" if len(missing) == 1 else "are"
        raise UsageError(f"lstmkit {command} needs the lab extra; {', '.join(missing)} {verb} not installed: "
                         'pip install "lstmkit[lab]"')
