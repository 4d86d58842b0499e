"""Training checkpoints: one safetensors file, written atomically, read without unpickling anything.

The file holds the model's tensors (``model/<name>``), the optimizer's per-parameter tensors
(``optim/<index>/<key>``) and, in the safetensors metadata (str -> str), JSON for everything else: the step, the
optimizer's hyper-parameters, the trainer's counters, the run's config, and a SHA-256 over all tensor bytes so a
flipped byte is caught, not trained on. A save goes to a temporary file in the same folder, is fsynced, then
renamed over the old checkpoint (``os.replace`` is atomic on POSIX), so a crash at any moment leaves either the
old checkpoint or the new one, never half of one.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch

FORMAT = "lstmkit-lab-checkpoint/1"


class CheckpointError(ValueError):
    """A checkpoint file that is missing, truncated, corrupt or from another run."""


def _digest(tensors: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        h.update(name.encode())
        h.update(str(t.dtype).encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def encode(model: torch.nn.Module, optimizer: torch.optim.Optimizer, meta: dict) -> bytes:
    """The checkpoint file's bytes: ``meta`` must be JSON-serialisable (step, trainer counters, config)."""
    from safetensors.torch import save

    tensors = {f"model/{k}": v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    opt = optimizer.state_dict()
    scalars: dict[str, dict] = {}
    for index, state in opt["state"].items():
        for key, value in state.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim/{index}/{key}"] = value.detach().clone().contiguous()
            else:
                scalars.setdefault(str(index), {})[key] = value
    metadata = {
        "format": FORMAT,
        "meta": json.dumps(meta),
        "param_groups": json.dumps(opt["param_groups"]),
        "optim_scalars": json.dumps(scalars),
        "sha256": _digest(tensors),
    }
    return save(tensors, metadata=metadata)


def save_checkpoint(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, meta: dict) -> None:
    atomic_write_bytes(path, encode(model, optimizer, meta))


def decode(data: bytes, source: str) -> tuple[dict, dict, dict]:
    """``(model_state, optimizer_state, meta)`` from a checkpoint's bytes; ``source`` names it in errors."""
    from safetensors.torch import load

    try:
        tensors = load(data)
        metadata = _read_metadata(data)
    except Exception as err:  # safetensors raises its own error type or ValueError on a bad header
        raise CheckpointError(f"{source} is not a readable checkpoint (truncated or corrupt: {err}); delete it "
                              "to start over") from None
    if metadata.get("format") != FORMAT:
        raise CheckpointError(f"{source} is not an lstmkit lab checkpoint (format {metadata.get('format')!r}, "
                              f"expected {FORMAT!r})")
    if _digest(tensors) != metadata.get("sha256"):
        raise CheckpointError(f"{source} is corrupt: its tensors do not match the SHA-256 stored with them; delete "
                              "it to start over")
    model_state = {k.removeprefix("model/"): v for k, v in tensors.items() if k.startswith("model/")}
    state: dict[int, dict] = {}
    for key, value in tensors.items():
        if key.startswith("optim/"):
            _, index, name = key.split("/", 2)
            state.setdefault(int(index), {})[name] = value
    for index, values in json.loads(metadata["optim_scalars"]).items():
        state.setdefault(int(index), {}).update(values)
    optimizer_state = {"state": state, "param_groups": json.loads(metadata["param_groups"])}
    return model_state, optimizer_state, json.loads(metadata["meta"])


def load_checkpoint(path: Path) -> tuple[dict, dict, dict]:
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as err:
        raise CheckpointError(f"cannot read checkpoint {path}: {err.strerror}") from None
    return decode(data, str(path))


def _read_metadata(data: bytes) -> dict:
    """The safetensors header's ``__metadata__`` (the format is: 8-byte little-endian length, then JSON)."""
    if len(data) < 8:
        raise ValueError(f"file has {len(data)} bytes, fewer than the 8-byte header length")
    n = int.from_bytes(data[:8], "little")
    if n > len(data) - 8:
        raise ValueError(f"header claims {n} bytes but only {len(data) - 8} follow")
    return json.loads(data[8 : 8 + n]).get("__metadata__", {})


def save_weights(path: Path, model: torch.nn.Module, metadata: dict[str, str]) -> None:
    """The final weights as plain safetensors (``model.safetensors``), loadable by any safetensors reader."""
    from safetensors.torch import save

    tensors = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    atomic_write_bytes(path, save(tensors, metadata=metadata))


def load_weights(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load

    path = Path(path)
    try:
        return load(path.read_bytes())
    except OSError as err:
        raise CheckpointError(f"cannot read weights {path}: {err.strerror}") from None
    except Exception as err:
        raise CheckpointError(f"{path} is not a readable safetensors file (truncated or corrupt: {err})") from None
