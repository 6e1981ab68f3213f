"""shapes2d: the dSprites factor grid (Matthey et al. 2017), rendered procedurally.

Factors: shape (square, ellipse, heart) × scale (6) × orientation (40) × x (32) × y (32) =
737,280 binary-ish 64×64 images, one channel, anti-aliased, deterministic. Differences from
the dSprites archive, on purpose: orientations are 40 values in [0, 2π) (dSprites includes
both 0 and 2π, which duplicates images), and rendering is exact SDF coverage instead of a
rasterised PNG. Train/test: a fixed random 90/10 split of the grid (seeded).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from . import render as R
from .base import DatasetInfo, Factor, FactorDataset, check_split, split_rows

SHAPES = ("square", "ellipse", "heart")
SCALES = tuple(float(s) for s in np.linspace(0.5, 1.0, 6))
ORIENTATIONS = tuple(float(o) for o in np.linspace(0.0, 2 * math.pi, 40, endpoint=False))
POSITIONS = tuple(float(p) for p in np.linspace(0.0, 1.0, 32))
FACTOR_SIZES = (3, 6, 40, 32, 32)
SIZE = 64
BASE_RADIUS = 10.0  # half size in pixels at scale 1
MARGIN = 14.0  # centre range [MARGIN, SIZE - MARGIN]

INFO = DatasetInfo(
    name="shapes2d",
    image_shape=(1, SIZE, SIZE),
    factors=(
        Factor("shape", 3, SHAPES),
        Factor("scale", 6, SCALES),
        Factor("orientation", 40),
        Factor("x", 32),
        Factor("y", 32),
    ),
    procedural=True,
    has_generator=True,
    description="dSprites factor grid rendered procedurally (737,280 images, 64x64x1)",
    paper_use="UD-GAN Table 1 (2D Shapes); the disentanglement_lib metric study",
)


@dataclass
class Options:
    seed: int = 0  # seeds the train/test split (rendering needs no seed)
    test_fraction: float = 0.1  # fraction of the grid held out


def _strides() -> np.ndarray:
    sizes = np.array(FACTOR_SIZES)
    return np.concatenate([np.cumprod(sizes[::-1])[::-1][1:], [1]])


STRIDES = _strides()
NUM_IMAGES = int(np.prod(FACTOR_SIZES))


def index_to_factors(index: np.ndarray) -> np.ndarray:
    index = np.asarray(index, dtype=np.int64)
    return (index[:, None] // STRIDES[None]) % np.array(FACTOR_SIZES)[None]


def factors_to_index(factors: np.ndarray) -> np.ndarray:
    return (np.asarray(factors, dtype=np.int64) * STRIDES[None]).sum(axis=1)


def render(factors: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Images (N, 1, 64, 64) in [0, 1] for integer factor rows (N, 5)."""
    return R.chunked(_render, torch.as_tensor(np.asarray(factors), dtype=torch.long))


def _render(f: torch.Tensor) -> torch.Tensor:
    x, y = R.pixel_grid(SIZE)
    shape = f[:, 0].view(-1, 1, 1)
    radius = R.col(torch.tensor(SCALES)[f[:, 1]] * BASE_RADIUS)
    angle = R.col(torch.tensor(ORIENTATIONS)[f[:, 2]])
    span = SIZE - 2 * MARGIN
    cx = R.col(MARGIN + torch.tensor(POSITIONS)[f[:, 3]] * span)
    cy = R.col(MARGIN + torch.tensor(POSITIONS)[f[:, 4]] * span)
    u, v = R.rotate(x, y, cx, cy, angle)
    d_square = R.box_local(u, v, radius * 0.85, radius * 0.85)
    d_ellipse = R.ellipse_local(u, v, radius * 1.1, radius * 0.55)
    d_heart = R.heart_local(u, v, radius)
    d = torch.where(shape == 0, d_square, torch.where(shape == 1, d_ellipse, d_heart))
    return R.coverage(d)[:, None]


class Shapes2D(FactorDataset):
    info = INFO

    def __init__(self, split: str = "train", options: Options | None = None) -> None:
        self.options = options or Options()
        self.split = check_split(split)
        self.rows = split_rows(NUM_IMAGES, self.options.test_fraction, self.options.seed, split)

    def __len__(self) -> int:
        return len(self.rows)

    def get_batch(self, indices: np.ndarray) -> dict[str, torch.Tensor]:
        factors = index_to_factors(self.rows[indices])
        return {
            "image": render(factors),
            "factors": torch.from_numpy(factors),
            "attributes": torch.zeros(len(indices), 0),
            "index": torch.from_numpy(np.asarray(indices, dtype=np.int64)),
        }

    def factor_array(self) -> np.ndarray:
        return index_to_factors(self.rows)

    def attribute_array(self) -> np.ndarray:
        return np.zeros((len(self.rows), 0), dtype=np.float32)

    # --- ground-truth generator (for higgins / factorvae) --------------------------------
    def sample_factors(self, n: int, generator: np.random.Generator) -> np.ndarray:
        """``n`` factor rows, each factor uniform over its values (the metric study's model)."""
        return np.stack([generator.integers(0, s, size=n) for s in FACTOR_SIZES], axis=1)

    def images(self, factors: np.ndarray, generator: np.random.Generator | None = None) -> torch.Tensor:
        return render(factors)
