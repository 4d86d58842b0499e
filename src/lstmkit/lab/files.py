"""How the lab writes a file: whole or not at all, as strict JSON, and with a one-line error when the disk refuses.

A write goes to a temporary ``.<name>.tmp-<pid>`` in the same folder, is fsynced, then renamed over the old file
(``os.replace`` is atomic on POSIX), so a crash at any moment leaves the old file or the new one, never half of
one. A failed write (a full or read-only disk, a signal) removes its temporary and raises :class:`WriteError`,
which names the file and the OS's reason. A process killed with SIGKILL cannot clean up: its temporary is removed
by :func:`remove_stale_temporaries` when the next run starts in that folder.

JSON is written with ``allow_nan=False`` semantics: a non-finite number becomes ``null`` (``NaN`` and
``Infinity`` are not JSON, and strict readers refuse them).
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

_TEMPORARY = re.compile(r"^\..+\.tmp-(\d+)$")


class WriteError(OSError):
    """A file the lab could not write; the message names the file and the OS's reason."""

    def __str__(self) -> str:  # the message alone, without OSError's "[Errno 28] " prefix
        return self.strerror or super().__str__()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename; :class:`WriteError` if the OS refuses."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_folder(path.parent)  # the rename itself reaches the disk
    except BaseException as err:  # a full disk, or SIGTERM/Ctrl-C mid-write: leave no temporary behind
        tmp.unlink(missing_ok=True)
        if isinstance(err, OSError):
            raise WriteError(err.errno, f"cannot write {path}: {err.strerror or err}") from None
        raise


def _fsync_folder(folder: Path) -> None:
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Remove the temporaries in ``folder`` left by processes that no longer run; returns what was removed.

    A temporary of a live process (another run writing there, or this one) is kept."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for path in folder.iterdir():
        match = _TEMPORARY.match(path.name)
        if match and int(match.group(1)) != os.getpid() and not _alive(int(match.group(1))) and path.is_file():
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed


def finite_or_none(value):
    """``value`` with every non-finite float (in nested dicts and lists too) replaced by None."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: finite_or_none(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite_or_none(v) for v in value]
    return value


def to_json(data, **kw) -> str:
    """Strict JSON: non-finite numbers become null, so ``json.loads`` of any strict reader accepts it."""
    return json.dumps(finite_or_none(data), allow_nan=False, **kw)


def write_json(path: Path, data: dict) -> None:
    atomic_write_bytes(path, (to_json(data, indent=2) + "\n").encode())
