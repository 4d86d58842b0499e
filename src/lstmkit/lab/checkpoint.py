"""Training checkpoints: one safetensors file, written atomically (:mod:`.files`), read without unpickling anything.

The file holds the model's tensors (``model/<name>``), the optimizer's per-parameter tensors
(``optim/<index>/<key>``) and, in the safetensors metadata (str -> str), JSON for everything else: the step, the
optimizer's hyper-parameters, the trainer's counters and the run's config. A SHA-256 over everything that is read
back -- every tensor's name, dtype, shape and bytes, and every metadata field -- is stored with them, so a flipped
byte anywhere is caught, not trained on. :func:`decode` also checks the structure of what it returns (which field
is a dict, which a list); whether the contents fit a run is :mod:`.resume`'s question.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import torch

from .files import atomic_write_bytes

FORMAT = "lstmkit-lab-checkpoint/2"
# metadata field: the JSON type it holds
_FIELDS = {"meta": dict, "param_groups": list, "optim_scalars": dict}
_OPTIM_TENSOR = re.compile(r"^optim/(0|[1-9][0-9]*)/(.+)$")


class CheckpointError(ValueError):
    """A checkpoint file that is missing, truncated, corrupt, inconsistent or from another run."""


def _digest(tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> str:
    """SHA-256 over every tensor (name, dtype, shape, bytes) and every metadata field but the digest itself."""
    h = hashlib.sha256()

    def put(b: bytes) -> None:  # length-prefixed, so no two different contents give the same stream
        h.update(len(b).to_bytes(8, "little"))
        h.update(b)

    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        put(name.encode())
        put(str(t.dtype).encode())
        put(str(tuple(t.shape)).encode())
        put(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    for key in sorted(k for k in metadata if k != "sha256"):
        put(key.encode())
        put(metadata[key].encode())
    return h.hexdigest()


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
    metadata = {"format": FORMAT, "meta": json.dumps(meta, allow_nan=False),
                "param_groups": json.dumps(opt["param_groups"], allow_nan=False),
                "optim_scalars": json.dumps(scalars, allow_nan=False)}
    metadata["sha256"] = _digest(tensors, metadata)
    return save(tensors, metadata=metadata)


def save_checkpoint(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, meta: dict) -> None:
    atomic_write_bytes(path, encode(model, optimizer, meta))


def decode(data: bytes, source: str) -> tuple[dict, dict, dict]:
    """``(model_state, optimizer_state, meta)`` from a checkpoint's bytes; ``source`` names it in errors.

    Raises :class:`CheckpointError` (one line naming ``source`` and what is wrong) for anything unreadable."""
    from safetensors.torch import load

    try:
        tensors = load(data)
        metadata = _read_metadata(data)
    except Exception as err:  # safetensors raises its own error type or ValueError on a bad header
        raise CheckpointError(f"{source} is not a readable checkpoint (truncated or corrupt: "
                              f"{_one_line(err)}); delete it to start over") from None
    if not all(isinstance(v, str) for v in metadata.values()):
        raise CheckpointError(f"{source} is not a readable checkpoint (its metadata is not all text); delete it "
                              "to start over")
    if metadata.get("format") != FORMAT:
        raise CheckpointError(f"{source} is not an lstmkit lab checkpoint (format {metadata.get('format')!r}, "
                              f"expected {FORMAT!r})")
    if _digest(tensors, metadata) != metadata.get("sha256"):
        raise CheckpointError(f"{source} is corrupt: its contents do not match the SHA-256 stored with them; "
                              "delete it to start over")
    fields = {key: _json_field(metadata, key, kind, source) for key, kind in _FIELDS.items()}
    model_state = {k.removeprefix("model/"): v for k, v in tensors.items() if k.startswith("model/")}
    state: dict[int, dict] = {}
    for key, value in tensors.items():
        if key.startswith("model/"):
            continue
        match = _OPTIM_TENSOR.match(key)
        if match is None:
            raise CheckpointError(f"{source} holds a tensor named {key!r}; expected model/<name> or "
                                  "optim/<index>/<name>")
        state.setdefault(int(match.group(1)), {})[match.group(2)] = value
    for index, values in fields["optim_scalars"].items():
        if not (index.isdigit() and isinstance(values, dict)):
            raise CheckpointError(f"{source}: field 'optim_scalars' must map parameter indices to dicts, got "
                                  f"{index!r}: {type(values).__name__}")
        state.setdefault(int(index), {}).update(values)
    optimizer_state = {"state": state, "param_groups": fields["param_groups"]}
    return model_state, optimizer_state, fields["meta"]


def load_checkpoint(path: Path) -> tuple[dict, dict, dict]:
    return decode(read_bytes(path, "checkpoint"), str(path))


def read_bytes(path: Path, what: str) -> bytes:
    """``path``'s bytes, or a CheckpointError naming it (a folder, a missing or unreadable file)."""
    path = Path(path)
    try:
        return path.read_bytes()
    except OSError as err:
        raise CheckpointError(f"cannot read {what} {path}: {err.strerror or err}") from None


def _json_field(metadata: dict[str, str], key: str, kind: type, source: str):
    if key not in metadata:
        raise CheckpointError(f"{source} has no {key!r} field; expected the fields {', '.join(_FIELDS)}")
    try:
        value = json.loads(metadata[key])
    except ValueError as err:
        raise CheckpointError(f"{source}: field {key!r} is not JSON ({err})") from None
    if not isinstance(value, kind):
        raise CheckpointError(f"{source}: field {key!r} must be a JSON {kind.__name__}, got {type(value).__name__}")
    return value


def _one_line(err: Exception) -> str:
    return " ".join(str(err).split())


def _read_metadata(data: bytes) -> dict:
    """The safetensors header's ``__metadata__`` (the format is: 8-byte little-endian length, then JSON)."""
    if len(data) < 8:
        raise ValueError(f"file has {len(data)} bytes, fewer than the 8-byte header length")
    n = int.from_bytes(data[:8], "little")
    if n > len(data) - 8:
        raise ValueError(f"header claims {n} bytes but only {len(data) - 8} follow")
    metadata = json.loads(data[8 : 8 + n]).get("__metadata__", {})
    if not isinstance(metadata, dict):
        raise ValueError(f"__metadata__ is a {type(metadata).__name__}, not a dict")
    return metadata


def save_weights(path: Path, model: torch.nn.Module, metadata: dict[str, str]) -> None:
    """The final weights as plain safetensors (``model.safetensors``), loadable by any safetensors reader."""
    from safetensors.torch import save

    tensors = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    atomic_write_bytes(path, save(tensors, metadata=metadata))


def load_weights(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load

    data = read_bytes(path, "weights")
    try:
        return load(data)
    except Exception as err:
        raise CheckpointError(f"{path} is not a readable safetensors file (truncated or corrupt: "
                              f"{_one_line(err)})") from None
