"""Checkpoints: atomic, verifiable, pickle-free.

A checkpoint is two files in ``DIR/checkpoints``:

* ``step-N.safetensors`` – every tensor: model weights and buffers (``model.*``), optimizer
  moments, RNG states (``state.*``);
* ``step-N.json`` – everything else (step, optimizer hyper-parameters, RNG positions, data
  order) plus the SHA-256 and byte size of the ``.safetensors`` file.

Both are written atomically (temp file, fsync, rename, fsync of the folder), weights first; a
checkpoint counts only once its ``.json`` exists, and loading checks size and hash, so a
truncated or corrupt newest checkpoint is detected and the previous one is used.

Nested Python state (optimizer/scheduler ``state_dict``s, RNG states) is stored with
:func:`encode_state`: tensors go to the tensor file, the rest to tagged JSON that keeps tuples,
integer dict keys and numpy arrays — nothing is pickled.
"""

from __future__ import annotations

import json
import re
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from ..errors import CheckpointError
from ..files import atomic_write_bytes, atomic_write_text, sha256_bytes

CHECKPOINT_RE = re.compile(r"^step-(\d+)\.json$")


# --- pickle-free state encoding ------------------------------------------------------------------


def encode_state(obj: Any, tensors: dict[str, torch.Tensor], prefix: str) -> Any:
    """JSON-able description of ``obj``; tensors/arrays are moved into ``tensors``."""
    if torch.is_tensor(obj):
        key = f"{prefix}"
        tensors[key] = obj.detach().cpu().contiguous().clone()
        return {"__tensor__": key}
    if isinstance(obj, np.ndarray):
        key = f"{prefix}"
        tensors[key] = torch.from_numpy(np.ascontiguousarray(obj).copy())
        return {"__ndarray__": key, "dtype": str(obj.dtype)}
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Counter):
        return {"__counter__": [[encode_state(k, tensors, f"{prefix}.k{i}"), v] for i, (k, v) in enumerate(obj.items())]}
    if isinstance(obj, dict):
        return {
            "__map__": [
                [encode_state(k, tensors, f"{prefix}.k{i}"), encode_state(v, tensors, f"{prefix}.{i}")]
                for i, (k, v) in enumerate(obj.items())
            ]
        }
    if isinstance(obj, tuple):
        return {"__tuple__": [encode_state(v, tensors, f"{prefix}.{i}") for i, v in enumerate(obj)]}
    if isinstance(obj, list):
        return [encode_state(v, tensors, f"{prefix}.{i}") for i, v in enumerate(obj)]
    if isinstance(obj, float) and not np.isfinite(obj):
        return {"__float__": repr(obj)}
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"cannot store {type(obj).__name__} in a checkpoint (at {prefix})")


def decode_state(obj: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(obj, list):
        return [decode_state(v, tensors) for v in obj]
    if isinstance(obj, dict):
        if "__tensor__" in obj:
            return tensors[obj["__tensor__"]]
        if "__ndarray__" in obj:
            return tensors[obj["__ndarray__"]].numpy().astype(obj["dtype"])
        if "__counter__" in obj:
            return Counter({decode_state(k, tensors): v for k, v in obj["__counter__"]})
        if "__map__" in obj:
            return {decode_state(k, tensors): decode_state(v, tensors) for k, v in obj["__map__"]}
        if "__tuple__" in obj:
            return tuple(decode_state(v, tensors) for v in obj["__tuple__"])
        if "__float__" in obj:
            return float(obj["__float__"])
    return obj


# --- checkpoint files ----------------------------------------------------------------------------


def checkpoint_paths(directory: Path, step: int) -> tuple[Path, Path]:
    return directory / f"step-{step}.safetensors", directory / f"step-{step}.json"


def save_checkpoint(directory: Path, step: int, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> Path:
    """Write checkpoint ``step`` atomically: tensors first, then the JSON that vouches for them."""
    directory = Path(directory)
    weights, manifest = checkpoint_paths(directory, step)
    data = st_save({k: v.contiguous() for k, v in tensors.items()}, metadata={"format": "pt"})
    atomic_write_bytes(weights, data)
    record = dict(meta)
    record.update(step=step, weights=weights.name, size=len(data), sha256=sha256_bytes(data))
    atomic_write_text(manifest, json.dumps(record, allow_nan=True))
    return manifest


def list_checkpoints(directory: Path) -> list[int]:
    """Steps of checkpoints whose manifest exists, oldest first."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    steps = [int(m.group(1)) for p in directory.iterdir() if (m := CHECKPOINT_RE.match(p.name))]
    return sorted(steps)


def read_checkpoint(directory: Path, step: int) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Load and verify one checkpoint; :class:`CheckpointError` says what is wrong."""
    weights, manifest = checkpoint_paths(Path(directory), step)
    try:
        meta = json.loads(manifest.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{manifest}: unreadable manifest ({exc})") from None
    try:
        data = weights.read_bytes()
    except OSError as exc:
        raise CheckpointError(f"{weights}: missing ({exc})") from None
    if len(data) != meta.get("size"):
        raise CheckpointError(f"{weights}: {len(data)} bytes, expected {meta.get('size')} (truncated)")
    if sha256_bytes(data) != meta.get("sha256"):
        raise CheckpointError(f"{weights}: SHA-256 does not match the manifest (corrupt)")
    return st_load(data), meta


def load_newest(directory: Path) -> tuple[int, dict[str, torch.Tensor], dict[str, Any]] | None:
    """The newest checkpoint that verifies; corrupt newer ones are reported and skipped."""
    for step in reversed(list_checkpoints(directory)):
        try:
            tensors, meta = read_checkpoint(directory, step)
        except CheckpointError as exc:
            warnings.warn(f"skipping checkpoint step-{step}: {exc}; falling back to an older one", stacklevel=2)
            continue
        return step, tensors, meta
    return None


def prune(directory: Path, keep: int) -> None:
    """Delete all but the newest ``keep`` checkpoints (manifest first, so none is half-valid)."""
    steps = list_checkpoints(directory)
    for step in steps[: max(0, len(steps) - keep)]:
        weights, manifest = checkpoint_paths(Path(directory), step)
        manifest.unlink(missing_ok=True)
        weights.unlink(missing_ok=True)


def save_weights(path: Path, model: torch.nn.Module, metadata: dict[str, str] | None = None) -> None:
    """``model.safetensors``: weights and buffers only, written atomically."""
    state = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    atomic_write_bytes(Path(path), st_save(state, metadata=metadata or {}))


def load_weights(path: Path) -> dict[str, torch.Tensor]:
    try:
        return st_load(Path(path).read_bytes())
    except Exception as exc:  # safetensors raises its own error types
        raise CheckpointError(f"{path}: cannot read weights ({exc})") from None
