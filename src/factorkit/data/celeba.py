"""celeba: CelebA in its official layout under ``--data-root``::

    img_align_celeba/000001.jpg …
    list_attr_celeba.txt        (count, 40 attribute names, then "000001.jpg -1 1 …")
    list_eval_partition.txt     ("000001.jpg 0"; 0 train, 1 valid, 2 test)

The crop is a named option recorded in config.yaml (``data.crop``):

* ``cdnet`` (default): rows 40:188, cols 15:163 (148×148), Gaussian blur σ = √(148/64)/2,
  bicubic resize — the pipeline of the mddAE authors' code (methods.md §0.2).
* ``fit``: centre crop to a square, then resize (``PIL.ImageOps.fit``) — the IFcVAE-GAN code.

Decoded once into a uint8 memory-mapped cache (see :mod:`factorkit.data.cache`). Attributes are
mapped ±1 → {1, 0}; every attribute is also a binary factor.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Literal

import numpy as np
from PIL import Image, ImageFilter, ImageOps

from ..errors import UsageError
from .base import ArrayDataset, DatasetInfo, Factor
from .cache import decoded_images, require_file

ATTRIBUTES = (
    "5_o_Clock_Shadow Arched_Eyebrows Attractive Bags_Under_Eyes Bald Bangs Big_Lips Big_Nose "
    "Black_Hair Blond_Hair Blurry Brown_Hair Bushy_Eyebrows Chubby Double_Chin Eyeglasses Goatee "
    "Gray_Hair Heavy_Makeup High_Cheekbones Male Mouth_Slightly_Open Mustache Narrow_Eyes No_Beard "
    "Oval_Face Pale_Skin Pointy_Nose Receding_Hairline Rosy_Cheeks Sideburns Smiling Straight_Hair "
    "Wavy_Hair Wearing_Earrings Wearing_Hat Wearing_Lipstick Wearing_Necklace Wearing_Necktie Young"
).split()
LAYOUT = (
    "DIR/img_align_celeba/*.jpg, DIR/list_attr_celeba.txt, DIR/list_eval_partition.txt "
    "(the official aligned CelebA release)"
)
PARTITIONS = {"train": (0,), "valid": (1,), "test": (2,), "all": (0, 1, 2)}


def info(size: int = 64, attributes: tuple[str, ...] = tuple(ATTRIBUTES)) -> DatasetInfo:
    return DatasetInfo(
        name="celeba",
        image_shape=(3, size, size),
        factors=tuple(Factor(a, 2, (0, 1)) for a in attributes),
        attributes=attributes,
        needs_data_root=True,
        description="CelebA aligned faces + 40 attributes from --data-root (official partition)",
        paper_use="all five papers",
    )


@dataclass
class Options:
    crop: Literal["cdnet", "fit"] = "cdnet"  # see module docstring
    size: int = 64  # output side in pixels


def decode(path: Path, crop: str, size: int) -> np.ndarray:
    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            if crop == "cdnet":
                im = im.crop((15, 40, 163, 188))
                sigma = math.sqrt(148 / size) / 2
                im = im.filter(ImageFilter.GaussianBlur(sigma)).resize((size, size), Image.BICUBIC)
            else:
                im = ImageOps.fit(im, (size, size), Image.BICUBIC)
            return np.asarray(im, dtype=np.uint8)
    except OSError as exc:
        raise UsageError(f"{path}: cannot decode image ({exc})") from None


def read_attributes(path: Path) -> tuple[list[str], list[str], np.ndarray]:
    lines = path.read_text().splitlines()
    try:
        count = int(lines[0].strip())
        names = lines[1].split()
        rows = [line.split() for line in lines[2 : 2 + count] if line.strip()]
        files = [r[0] for r in rows]
        values = np.array([[int(v) for v in r[1:]] for r in rows], dtype=np.int64)
    except (IndexError, ValueError):
        raise UsageError(
            f"{path}: malformed; expected a count line, a line of attribute names, then "
            f"'000001.jpg -1 1 …' rows"
        ) from None
    if len(rows) != count or values.shape[1:] != (len(names),):
        raise UsageError(f"{path}: header says {count} rows x {len(names)} attributes, found {values.shape}")
    if not np.isin(values, (-1, 1)).all():
        raise UsageError(f"{path}: attribute values must be -1 or 1")
    return names, files, values


def read_partition(path: Path) -> dict[str, int]:
    out = {}
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
            raise UsageError(f"{path}:{n}: expected 'FILENAME 0|1|2', got {line!r}")
        out[parts[0]] = int(parts[1])
    return out


def load(split: str = "train", options: Options | None = None, root=None) -> ArrayDataset:
    o = options or Options()
    if root is None:
        raise UsageError(f"celeba reads local files: pass --data-root DIR with {LAYOUT}")
    root = Path(root)
    if not root.is_dir():
        raise UsageError(f"--data-root {root} is not a directory; expected {LAYOUT}")
    if split not in PARTITIONS:
        raise UsageError(f"unknown split {split!r} for celeba; valid: {', '.join(PARTITIONS)}")
    names, files, values = read_attributes(require_file(root / "list_attr_celeba.txt", LAYOUT))
    partition = read_partition(require_file(root / "list_eval_partition.txt", LAYOUT))
    image_dir = root / "img_align_celeba"
    if not image_dir.is_dir():
        raise UsageError(f"missing folder {image_dir}; expected layout: {LAYOUT}")
    paths = [image_dir / f for f in files]
    for p in paths:
        if not p.is_file():
            raise UsageError(f"missing image {p} (listed in list_attr_celeba.txt); expected layout: {LAYOUT}")
    missing = [f for f in files if f not in partition]
    if missing:
        raise UsageError(f"{root / 'list_eval_partition.txt'}: no partition for {missing[0]}")
    images = decoded_images(
        root, f"celeba-{o.crop}-{o.size}", paths, (o.size, o.size, 3), partial(decode, crop=o.crop, size=o.size)
    )
    part = np.array([partition[f] for f in files])
    rows = np.flatnonzero(np.isin(part, PARTITIONS[split]))
    attrs = (values > 0).astype(np.float32)
    return ArrayDataset(info(o.size, tuple(names)), split, images, attrs.astype(np.int64), attrs, rows)
