"""digits and colored-digits: MNIST from its IDX files in ``--data-root``.

Expected layout (gzipped ``.gz`` or not; directly in the root or in ``raw/`` below it)::

    train-images-idx3-ubyte   train-labels-idx1-ubyte
    t10k-images-idx3-ubyte    t10k-labels-idx1-ubyte

``colored-digits`` paints each digit's strokes in one of 7 colours on one of 4 background
colours, drawn from ``(seed, index)``: factors digit (10) × colour (7) × background (4).
Splits: the official 60,000 train / 10,000 test.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import UsageError
from .base import ArrayDataset, DatasetInfo, Factor, FactorDataset, check_split, seed_of

LAYOUT = (
    "DIR/{train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, "
    "t10k-labels-idx1-ubyte}[.gz] (or the same in DIR/raw/)"
)
FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
FOREGROUNDS = {
    "white": (1.0, 1.0, 1.0),
    "red": (0.95, 0.2, 0.2),
    "green": (0.2, 0.85, 0.3),
    "blue": (0.25, 0.4, 1.0),
    "yellow": (0.98, 0.88, 0.2),
    "magenta": (0.9, 0.3, 0.9),
    "cyan": (0.2, 0.9, 0.95),
}
BACKGROUNDS = {"black": (0.0, 0.0, 0.0), "navy": (0.1, 0.1, 0.35), "olive": (0.3, 0.3, 0.05), "maroon": (0.35, 0.08, 0.1)}

DIGITS_INFO = DatasetInfo(
    name="digits",
    image_shape=(1, 28, 28),
    factors=(Factor("digit", 10, tuple(range(10))),),
    attributes=tuple(f"digit_{d}" for d in range(10)),
    attribute_kind="onehot",
    needs_data_root=True,
    description="MNIST from IDX files (gzipped or not) in --data-root",
    paper_use="mddAE (MNIST), mixing autoencoder (MNIST), UD-GAN appendix",
)
COLORED_INFO = DatasetInfo(
    name="colored-digits",
    image_shape=(3, 28, 28),
    factors=(
        Factor("digit", 10, tuple(range(10))),
        Factor("colour", len(FOREGROUNDS), tuple(FOREGROUNDS)),
        Factor("background", len(BACKGROUNDS), tuple(BACKGROUNDS)),
    ),
    attributes=tuple(f"digit_{d}" for d in range(10)),
    attribute_kind="onehot",
    needs_data_root=True,
    description="MNIST digits painted in 7 stroke colours on 4 backgrounds (from --data-root)",
    paper_use="UD-GAN appendix B (colored MNIST, average-colour guidance)",
)


@dataclass
class Options:
    seed: int = 0  # colored-digits: seeds stroke and background colours


def _find(root: Path, name: str) -> Path:
    for folder in (root, root / "raw"):
        for candidate in (folder / name, folder / f"{name}.gz"):
            if candidate.is_file():
                return candidate
    raise UsageError(f"missing MNIST file {root / name}[.gz]; expected layout: {LAYOUT}")


def read_idx(path: Path) -> np.ndarray:
    """Parse an IDX file (uint8 data): big-endian magic 0x0000 08 NDIM, then NDIM sizes."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            data = fh.read()
    except (OSError, EOFError) as exc:
        raise UsageError(f"{path}: cannot read ({exc}); expected an IDX file, see {LAYOUT}") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise UsageError(f"{path}: not an IDX uint8 file (bad magic number); expected layout: {LAYOUT}")
    ndim = data[3]
    header = 4 + 4 * ndim
    dims = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = int(np.prod(dims)) if dims else 0
    if len(data) - header != expected:
        raise UsageError(
            f"{path}: truncated or malformed IDX file (header says {dims}, "
            f"{len(data) - header} bytes of data); expected layout: {LAYOUT}"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def _read_split(root: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    images_name, labels_name = FILES[split]
    images_path, labels_path = _find(root, images_name), _find(root, labels_name)
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise UsageError(
            f"{images_path} / {labels_path}: expected (N,28,28) images and N labels, got "
            f"{images.shape} and {labels.shape}"
        )
    if labels.size and labels.max() > 9:
        raise UsageError(f"{labels_path}: labels must be digits 0-9, found {labels.max()}")
    return images, labels.astype(np.int64)


def _read(root: str | Path | None, split: str) -> tuple[np.ndarray, np.ndarray]:
    if root is None:
        raise UsageError(f"this dataset reads MNIST files: pass --data-root DIR with {LAYOUT}")
    root = Path(root)
    if not root.is_dir():
        raise UsageError(f"--data-root {root} is not a directory; expected {LAYOUT}")
    check_split(split)
    parts = ["train", "test"] if split == "all" else [split]
    pairs = [_read_split(root, s) for s in parts]
    return np.concatenate([p[0] for p in pairs]), np.concatenate([p[1] for p in pairs])


def load_digits(split: str = "train", options: Options | None = None, root=None) -> ArrayDataset:
    images, labels = _read(root, split)
    info = DatasetInfo(**{**DIGITS_INFO.__dict__, "image_shape": (1,) + images.shape[1:]})
    return ArrayDataset(info, split, images[..., None], labels[:, None], np.eye(10, dtype=np.float32)[labels])


class ColoredDigits(FactorDataset):
    info = COLORED_INFO

    def __init__(self, split: str = "train", options: Options | None = None, root=None) -> None:
        self.options = options or Options()
        self.split = split
        self._images, labels = _read(root, split)
        rng = np.random.Generator(np.random.Philox(seed_of("colored-digits", self.options.seed, split)))
        colour = rng.integers(0, len(FOREGROUNDS), size=len(labels))
        background = rng.integers(0, len(BACKGROUNDS), size=len(labels))
        self._factors = np.stack([labels, colour, background], axis=1)
        self.info = DatasetInfo(**{**COLORED_INFO.__dict__, "image_shape": (3,) + self._images.shape[1:]})

    def __len__(self) -> int:
        return len(self._factors)

    def get_batch(self, indices: np.ndarray) -> dict[str, torch.Tensor]:
        factors = self._factors[indices]
        return {
            "image": paint(self._images[indices], factors[:, 1], factors[:, 2]),
            "factors": torch.from_numpy(factors),
            "attributes": torch.from_numpy(np.eye(10, dtype=np.float32)[factors[:, 0]]),
            "index": torch.from_numpy(np.asarray(indices, dtype=np.int64)),
        }

    def factor_array(self) -> np.ndarray:
        return self._factors.copy()

    def attribute_array(self) -> np.ndarray:
        return np.eye(10, dtype=np.float32)[self._factors[:, 0]]


_FG = torch.tensor(list(FOREGROUNDS.values()))
_BG = torch.tensor(list(BACKGROUNDS.values()))


def paint(gray: np.ndarray, colour: np.ndarray, background: np.ndarray) -> torch.Tensor:
    """(N,H,W) uint8 strokes → (N,3,H,W): background·(1−m) + colour·m."""
    m = torch.from_numpy(np.ascontiguousarray(gray)).float().div(255.0)[:, None]
    fg = _FG[torch.as_tensor(colour)][:, :, None, None]
    bg = _BG[torch.as_tensor(background)][:, :, None, None]
    return bg * (1 - m) + fg * m
