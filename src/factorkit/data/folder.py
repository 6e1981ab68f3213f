"""folder: any folder of images plus ``attributes.csv``.

Layout::

    DIR/attributes.csv   header "filename,ATTR1,ATTR2,…[,split]"; values 0/1 or -1/1;
                         optional split column with train/test
    DIR/<filename>       PNG/JPEG/… named in the CSV (sub-folders allowed)

Images are centre-cropped to a square and resized to ``data.size`` (default 64), converted to
RGB (``data.channels=3``) or gray (``1``), decoded once into a memory-mapped cache. Without a
split column, a fixed seeded 90/10 split is used.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image, ImageOps

from ..errors import UsageError
from .base import ArrayDataset, DatasetInfo, Factor, check_split, split_rows
from .cache import decoded_images, require_file

LAYOUT = "DIR/attributes.csv (header: filename,ATTR1,…[,split]; values 0/1 or -1/1) and the images it names"


@dataclass
class Options:
    size: int = 64  # output side in pixels
    channels: Literal[1, 3] = 3
    seed: int = 0  # seeds the split when the CSV has no split column
    test_fraction: float = 0.1


def decode(path: Path, size: int, channels: int) -> np.ndarray:
    try:
        with Image.open(path) as im:
            im = ImageOps.fit(im.convert("RGB" if channels == 3 else "L"), (size, size), Image.BICUBIC)
            arr = np.asarray(im, dtype=np.uint8)
    except OSError as exc:
        raise UsageError(f"{path}: cannot decode image ({exc})") from None
    return arr if arr.ndim == 3 else arr[..., None]


def read_csv(path: Path) -> tuple[list[str], list[str], np.ndarray, list[str] | None]:
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    if not rows or not rows[0] or rows[0][0].strip().lower() != "filename":
        raise UsageError(f"{path}: first column must be 'filename'; expected {LAYOUT}")
    header = [h.strip() for h in rows[0]]
    has_split = header[-1].lower() == "split"
    names = header[1:-1] if has_split else header[1:]
    files, values, splits = [], [], []
    for n, row in enumerate(rows[1:], 2):
        if not any(c.strip() for c in row):
            continue
        if len(row) != len(header):
            raise UsageError(f"{path}:{n}: {len(row)} columns, header has {len(header)}")
        files.append(row[0].strip())
        try:
            vals = [int(float(v)) for v in row[1 : 1 + len(names)]]
        except ValueError:
            raise UsageError(f"{path}:{n}: attribute values must be 0/1 or -1/1") from None
        if any(v not in (-1, 0, 1) for v in vals):
            raise UsageError(f"{path}:{n}: attribute values must be 0/1 or -1/1, got {vals}")
        values.append(vals)
        if has_split:
            s = row[-1].strip().lower()
            if s not in ("train", "test"):
                raise UsageError(f"{path}:{n}: split must be train or test, got {s!r}")
            splits.append(s)
    if not files:
        raise UsageError(f"{path}: no image rows; expected {LAYOUT}")
    arr = (np.array(values, dtype=np.int64).reshape(len(files), len(names)) > 0).astype(np.int64)
    return names, files, arr, splits if has_split else None


def load(split: str = "train", options: Options | None = None, root=None) -> ArrayDataset:
    o = options or Options()
    check_split(split)
    if root is None:
        raise UsageError(f"folder reads local images: pass --data-root DIR with {LAYOUT}")
    root = Path(root)
    if not root.is_dir():
        raise UsageError(f"--data-root {root} is not a directory; expected {LAYOUT}")
    names, files, values, splits = read_csv(require_file(root / "attributes.csv", LAYOUT))
    paths = [root / f for f in files]
    for p in paths:
        if not p.is_file():
            raise UsageError(f"missing image {p} (listed in attributes.csv); expected {LAYOUT}")
    images = decoded_images(
        root, f"folder-{o.size}-{o.channels}", paths, (o.size, o.size, o.channels),
        partial(decode, size=o.size, channels=o.channels), workers=1 if len(paths) < 2000 else None,
    )
    if splits is not None:
        s = np.array(splits)
        rows = {"train": np.flatnonzero(s == "train"), "test": np.flatnonzero(s == "test"), "all": np.arange(len(s))}[split]
    else:
        rows = split_rows(len(files), o.test_fraction, o.seed, split)
    info = DatasetInfo(
        name="folder",
        image_shape=(o.channels, o.size, o.size),
        factors=tuple(Factor(a, 2, (0, 1)) for a in names),
        attributes=tuple(names),
        needs_data_root=True,
        description="any image folder + attributes.csv from --data-root",
    )
    return ArrayDataset(info, split, images, values, values.astype(np.float32), rows)
