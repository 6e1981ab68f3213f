"""Atomic file writes and content hashes: the ground floor every layer may use.

A reader sees either the old file or the whole new one, never a half-written file: the data go
to a temporary file in the same folder, are flushed and fsynced, then renamed over the target,
and the folder itself is fsynced so the rename survives a power cut.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def fsync_dir(path: Path) -> None:
    """fsync a folder (so a rename inside it is durable); a no-op where the OS does not allow it."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the whole new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    fsync_dir(path.parent)


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def user_cache_dir(name: str) -> Path:
    """``$FACTORKIT_CACHE/NAME`` (default ``$XDG_CACHE_HOME/factorkit/NAME``, ``~/.cache/…``): what
    factorkit computes once and reuses across runs (evaluation classifiers, measured floors)."""
    root = os.environ.get("FACTORKIT_CACHE") or Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "factorkit"
    return Path(root) / name
