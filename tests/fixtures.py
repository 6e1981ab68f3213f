"""Tiny datasets written in the real file formats (MNIST IDX, CelebA layout, image folder)."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
from PIL import Image

from factorkit.data.celeba import ATTRIBUTES


def write_idx(path: Path, array: np.ndarray, compress: bool = False) -> Path:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    data = header + array.astype(np.uint8).tobytes()
    if compress:
        path = path.with_name(path.name + ".gz")
        with gzip.open(path, "wb") as fh:
            fh.write(data)
    else:
        path.write_bytes(data)
    return path


def make_mnist(root: Path, n_train: int = 40, n_test: int = 20, compress: bool = False) -> Path:
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = np.zeros((n, 28, 28), np.uint8)
        labels = np.arange(n) % 10
        for i, d in enumerate(labels):  # a bar whose position encodes the digit
            images[i, 4:24, 2 + 2 * d : 4 + 2 * d] = 255
        images = np.maximum(images, rng.integers(0, 20, images.shape).astype(np.uint8))
        write_idx(root / f"{prefix}-images-idx3-ubyte", images, compress)
        write_idx(root / f"{prefix}-labels-idx1-ubyte", labels.astype(np.uint8), compress)
    return root


def make_celeba(root: Path, n: int = 12) -> Path:
    rng = np.random.default_rng(1)
    (root / "img_align_celeba").mkdir(parents=True, exist_ok=True)
    attrs = rng.choice([-1, 1], size=(n, len(ATTRIBUTES)))
    lines = [str(n), " ".join(ATTRIBUTES)]
    parts = []
    for i in range(n):
        name = f"{i + 1:06d}.jpg"
        img = np.full((218, 178, 3), 40, np.uint8)
        img[40:188, 15:163] = (200, 150, 100) if attrs[i, 31] > 0 else (60, 120, 200)  # Smiling → colour
        Image.fromarray(img).save(root / "img_align_celeba" / name, quality=95)
        lines.append(name + " " + " ".join(f"{v:2d}" for v in attrs[i]))
        parts.append(f"{name} {0 if i < n - 4 else (1 if i < n - 2 else 2)}")
    (root / "list_attr_celeba.txt").write_text("\n".join(lines) + "\n")
    (root / "list_eval_partition.txt").write_text("\n".join(parts) + "\n")
    return root


def make_folder(root: Path, n: int = 10, split_column: bool = False) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "sub").mkdir(exist_ok=True)
    header = "filename,Red,Big" + (",split" if split_column else "")
    rows = [header]
    for i in range(n):
        red, big = i % 2, (i // 2) % 2
        img = np.zeros((40 + 10 * (i % 3), 50, 3), np.uint8)  # sizes vary: cropped + resized
        s = 20 if big else 8
        img[:s, :s] = (255, 0, 0) if red else (0, 0, 255)
        name = f"sub/img{i}.png" if i % 2 else f"img{i}.png"
        Image.fromarray(img).save(root / name)
        row = f"{name},{red},{-1 if not big else 1}"
        if split_column:
            row += ",test" if i < 3 else ",train"
        rows.append(row)
    (root / "attributes.csv").write_text("\n".join(rows) + "\n")
    return root
