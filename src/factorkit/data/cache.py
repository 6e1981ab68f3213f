"""Decode image files once into a uint8 memory-mapped array, reused by every later run.

The cache lives in ``<root>/.factorkit-cache/`` when the data folder is writable, otherwise
under ``$XDG_CACHE_HOME/factorkit`` (default ``~/.cache/factorkit``). It is keyed by the
preprocessing (crop, size, channels) and a fingerprint of the file list, and written atomically
(temp file, fsync, rename): an interrupted build leaves no half cache behind.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from ..errors import UsageError


def cache_dir(root: Path) -> Path:
    candidate = root / ".factorkit-cache"
    try:
        candidate.mkdir(exist_ok=True)
        probe = candidate / ".write-test"
        probe.write_text("ok")
        probe.unlink()
        return candidate
    except OSError:
        base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "factorkit"
        out = base / hashlib.sha256(str(root.resolve()).encode()).hexdigest()[:16]
        out.mkdir(parents=True, exist_ok=True)
        return out


def _decode_chunk(args: tuple[Callable[[Path], np.ndarray], list[str]]) -> np.ndarray:
    fn, paths = args
    return np.stack([fn(Path(p)) for p in paths])


def decoded_images(
    root: Path,
    key: str,
    paths: Sequence[Path],
    shape: tuple[int, int, int],
    decode: Callable[[Path], np.ndarray],
    workers: int | None = None,
) -> np.ndarray:
    """Memory-mapped uint8 array (N, H, W, C) of ``decode(path)`` for every path, built once."""
    fingerprint = hashlib.sha256(
        "\n".join(f"{p.name}:{p.stat().st_size}" for p in paths).encode()
    ).hexdigest()[:16]
    directory = cache_dir(root)
    stem = f"{key}-{fingerprint}"
    data_path, meta_path = directory / f"{stem}.u8", directory / f"{stem}.json"
    full_shape = (len(paths),) + tuple(shape)
    if meta_path.is_file() and data_path.is_file():
        meta = json.loads(meta_path.read_text())
        if tuple(meta["shape"]) == full_shape and data_path.stat().st_size == int(np.prod(full_shape)):
            return np.memmap(data_path, dtype=np.uint8, mode="r", shape=full_shape)

    tmp = data_path.with_suffix(".u8.tmp")
    out = np.memmap(tmp, dtype=np.uint8, mode="w+", shape=full_shape)
    chunk = 512
    jobs = [(decode, [str(p) for p in paths[i : i + chunk]]) for i in range(0, len(paths), chunk)]
    workers = workers if workers is not None else min(os.cpu_count() or 1, 8)
    from rich.progress import track

    if workers > 1 and len(jobs) > 1:
        with ProcessPoolExecutor(workers) as pool:
            results = pool.map(_decode_chunk, jobs)
            for i, arr in enumerate(track(results, total=len(jobs), description=f"decoding {key}", transient=True)):
                out[i * chunk : i * chunk + len(arr)] = arr
    else:
        for i, job in enumerate(jobs):
            arr = _decode_chunk(job)
            out[i * chunk : i * chunk + len(arr)] = arr
    out.flush()
    with open(tmp, "rb+") as fh:
        os.fsync(fh.fileno())
    del out
    os.replace(tmp, data_path)
    meta_tmp = meta_path.with_suffix(".json.tmp")
    meta_tmp.write_text(json.dumps({"shape": list(full_shape), "files": len(paths)}))
    os.replace(meta_tmp, meta_path)
    return np.memmap(data_path, dtype=np.uint8, mode="r", shape=full_shape)


def require_file(path: Path, layout: str) -> Path:
    if not path.is_file():
        raise UsageError(f"missing file {path}; expected layout: {layout}")
    return path
