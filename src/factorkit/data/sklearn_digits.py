"""sklearn-digits: the 1,797 real 8×8 handwritten digits bundled with scikit-learn (UCI optical
recognition set), upsampled bilinearly to 32×32 (default). No download. Factor: class (10);
attributes: one-hot digit classes (softmax heads). Split: a fixed, seeded, class-stratified 80/20.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .base import ArrayDataset, DatasetInfo, Factor, check_split

CLASSES = tuple(str(d) for d in range(10))


def info(size: int = 32) -> DatasetInfo:
    return DatasetInfo(
        name="sklearn-digits",
        image_shape=(1, size, size),
        factors=(Factor("digit", 10, tuple(range(10))),),
        attributes=tuple(f"digit_{c}" for c in CLASSES),
        attribute_kind="onehot",
        description="scikit-learn's 1,797 real 8x8 handwritten digits, upsampled (no download)",
        paper_use="small real stand-in for MNIST (mddAE case 1: class swap)",
    )


@dataclass
class Options:
    seed: int = 0  # seeds the stratified split
    size: int = 32  # output side in pixels
    test_fraction: float = 0.2


def load(split: str = "train", options: Options | None = None) -> ArrayDataset:
    from sklearn.datasets import load_digits

    o = options or Options()
    check_split(split)
    bunch = load_digits()
    images = torch.from_numpy(bunch.images.astype(np.float32) / 16.0)[:, None]
    images = F.interpolate(images, size=(o.size, o.size), mode="bilinear", align_corners=False)
    images = (images.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    labels = bunch.target.astype(np.int64)
    rng = np.random.Generator(np.random.Philox(o.seed))
    test = np.zeros(len(labels), dtype=bool)
    for c in range(10):  # stratified: the same fraction of every class is held out
        members = np.flatnonzero(labels == c)
        test[rng.permutation(members)[: int(round(len(members) * o.test_fraction))]] = True
    rows = {"train": np.flatnonzero(~test), "test": np.flatnonzero(test), "all": np.arange(len(labels))}[split]
    onehot = np.eye(10, dtype=np.float32)[labels]
    return ArrayDataset(info(o.size), split, images, labels[:, None], onehot, rows)
