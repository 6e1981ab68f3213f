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


def _write_memmap(path: Path, shape: tuple[int, ...], fill: Callable[[np.memmap], None]) -> np.memmap:
    """Write a uint8 array of ``shape`` to ``path`` atomically: ``fill`` writes a memory-mapped
    temp file, which is flushed, fsynced and renamed into place (removed if ``fill`` fails).
    Returns the finished file, memory-mapped read-only."""
    tmp = path.with_suffix(f"{path.suffix}.tmp{os.getpid()}")
    try:
        out = np.memmap(tmp, dtype=np.uint8, mode="w+", shape=shape)
        fill(out)
        out.flush()
        del out
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return np.memmap(path, dtype=np.uint8, mode="r", shape=shape)


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

    chunk = 512
    jobs = [(decode, [str(p) for p in paths[i : i + chunk]]) for i in range(0, len(paths), chunk)]
    workers = workers if workers is not None else min(os.cpu_count() or 1, 8)

    def fill(out: np.memmap) -> None:
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

    images = _write_memmap(data_path, full_shape, fill)
    meta_tmp = meta_path.with_suffix(".json.tmp")
    meta_tmp.write_text(json.dumps({"shape": list(full_shape), "files": len(paths)}))
    os.replace(meta_tmp, meta_path)
    return images


def require_file(path: Path, layout: str) -> Path:
    if not path.is_file():
        raise UsageError(f"missing file {path}; expected layout: {layout}")
    return path


def source_fingerprint(*modules: object) -> str:
    """A short hash of the source files of ``modules``: a cache keyed by it is rebuilt whenever the
    code that produced it changes, with no version number to forget to bump."""
    digest = hashlib.sha256()
    for module in modules:
        digest.update(Path(module.__file__).read_bytes())  # type: ignore[attr-defined]
    return digest.hexdigest()[:16]


def rendered_images(key: str, n: int, shape: tuple[int, int, int], render: Callable[[np.ndarray], np.ndarray],
                    chunk: int = 256, build: bool = True, replaces: str | None = None) -> np.ndarray | None:
    """Memory-mapped uint8 array (N, C, H, W) of ``render(rows)`` for rows 0 … n−1, rendered once
    into ``$FACTORKIT_CACHE/renders/KEY.u8`` and reused by every later run (written atomically, as
    above). ``render`` maps an index array to uint8 images; ``key`` must name everything the images
    depend on (dataset options, split, renderer source). ``build=False``: None unless it exists.
    ``replaces``: a glob of older versions of this cache (another renderer source), deleted once
    the new one is written, so edits of the renderer do not pile up copies."""
    from ..files import user_cache_dir

    full_shape = (n,) + tuple(shape)
    directory = user_cache_dir("renders")
    data_path = directory / f"{key}.u8"
    if data_path.is_file() and data_path.stat().st_size == int(np.prod(full_shape)):
        return np.memmap(data_path, dtype=np.uint8, mode="r", shape=full_shape)
    if not build:
        return None
    directory.mkdir(parents=True, exist_ok=True)

    def fill(out: np.memmap) -> None:
        for start in range(0, n, chunk):
            out[start : min(n, start + chunk)] = render(np.arange(start, min(n, start + chunk)))

    images = _write_memmap(data_path, full_shape, fill)
    for old in directory.glob(replaces) if replaces else ():
        if old != data_path:
            old.unlink(missing_ok=True)
    return images
