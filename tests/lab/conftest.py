import os
import subprocess
import sys
from pathlib import Path

import pytest

import lstmkit

SRC = str(Path(lstmkit.__file__).resolve().parent.parent)


def _lab_env() -> dict:
    """The environment for a subprocess that imports this checkout's lstmkit, with one thread per process so
    runs are comparable to each other and fit two cores."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
           "OMP_NUM_THREADS": "1"}
    return env


def run_cli(*args, timeout=120, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lstmkit", *map(str, args)], capture_output=True, text=True,
                          env=_lab_env(), timeout=timeout, **kw)


@pytest.fixture
def cli():
    return run_cli


@pytest.fixture
def lab_env():
    return _lab_env()
