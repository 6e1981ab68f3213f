"""FactorDataset: the one dataset type every model, metric and viewer consumes.

An item is a dict ``{"image": float (C,H,W) in [0,1], "factors": long (K,),
"attributes": float (A,), "index": long}``. ``__getitems__`` returns the same keys batched, so
procedural datasets render a whole batch at once (torch's DataLoader calls it directly).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, default_collate

from ..errors import UsageError

SPLITS = ("train", "test", "all")


@dataclass(frozen=True)
class Factor:
    """A ground-truth factor of variation with ``size`` discrete values."""

    name: str
    size: int
    values: tuple[Any, ...] | None = None  # human-readable values, when they have names


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    image_shape: tuple[int, int, int]  # (C, H, W)
    factors: tuple[Factor, ...] = ()
    attributes: tuple[str, ...] = ()
    # "binary": independent 0/1 attributes (sigmoid heads); "onehot": mutually exclusive
    # classes (softmax heads, e.g. digit class)
    attribute_kind: str = "binary"
    needs_data_root: bool = False
    procedural: bool = False
    has_generator: bool = False  # sample_factors(n, generator) and images(factors)
    has_counterfactual: bool = False  # counterfactual(index, attribute, value)
    description: str = ""
    paper_use: str = ""  # which papers use this data (for `factorkit datasets`)

    @property
    def channels(self) -> int:
        return self.image_shape[0]

    @property
    def size(self) -> int:
        return self.image_shape[1]

    def factor_names(self) -> list[str]:
        return [f.name for f in self.factors]

    def attribute_index(self, name: str) -> int:
        """Index of an attribute, case-insensitive; a clear error lists the valid names."""
        lowered = {a.lower(): i for i, a in enumerate(self.attributes)}
        if name.lower() not in lowered:
            valid = ", ".join(self.attributes) or "(this dataset has no attributes)"
            raise UsageError(f"unknown attribute {name!r} for {self.name}; valid: {valid}")
        return lowered[name.lower()]

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "DatasetInfo":
        d = dict(d)
        d["image_shape"] = tuple(d["image_shape"])
        d["attributes"] = tuple(d.get("attributes", ()))
        d["factors"] = tuple(
            Factor(f["name"], f["size"], tuple(f["values"]) if f.get("values") else None) for f in d.get("factors", ())
        )
        return cls(**d)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["factors"] = [
            {"name": f.name, "size": f.size, **({"values": list(f.values)} if f.values else {})}
            for f in self.factors
        ]
        out["image_shape"] = list(self.image_shape)
        out["attributes"] = list(self.attributes)
        return out


def check_split(split: str) -> str:
    if split not in SPLITS:
        raise UsageError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")
    return split


class FactorDataset(Dataset):
    """Base class. Subclasses set ``info`` and implement ``__len__`` and ``get_batch``."""

    info: DatasetInfo
    split: str

    def __len__(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    def get_batch(self, indices: np.ndarray) -> dict[str, torch.Tensor]:  # pragma: no cover
        """Images and labels for split-local ``indices`` (1-D int array)."""
        raise NotImplementedError

    def prerender(self, build: bool = True) -> bool:
        """Procedural datasets that can render every image once into a uint8 cache read their
        batches from it (``build``: render it if missing) and return True; the rest return False
        (their batches are already lookups or decodes)."""
        return False

    # torch's DataLoader calls __getitems__ with a list of indices when it exists
    def __getitems__(self, indices: list[int]) -> dict[str, torch.Tensor]:
        idx = np.asarray(indices, dtype=np.int64)
        if idx.size and (idx.min() < 0 or idx.max() >= len(self)):
            raise IndexError(f"index out of range for {self.info.name}/{self.split} ({len(self)})")
        return self.get_batch(idx)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not 0 <= index < len(self):
            raise IndexError(index)
        batch = self.get_batch(np.asarray([index], dtype=np.int64))
        return {k: v[0] for k, v in batch.items()}

    # labels of the whole split, without rendering/decoding images (for metrics and splits)
    def factor_array(self) -> np.ndarray:
        """(N, K) int64 factor values of the split."""
        raise NotImplementedError

    def attribute_array(self) -> np.ndarray:
        """(N, A) float32 0/1 attributes of the split."""
        raise NotImplementedError

    def images_at(self, indices: Any) -> torch.Tensor:
        return self.get_batch(np.asarray(indices, dtype=np.int64))["image"]

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.info.name}/{self.split} n={len(self)}>"


def collate(batch: Any) -> Any:
    """DataLoader collate: batches from ``__getitems__`` arrive already stacked."""
    if isinstance(batch, dict):
        return batch
    return default_collate(batch)


class ArrayDataset(FactorDataset):
    """A dataset held as a uint8 image array (N,H,W,C), possibly memory-mapped, plus labels."""

    def __init__(
        self,
        info: DatasetInfo,
        split: str,
        images: np.ndarray,
        factors: np.ndarray,
        attributes: np.ndarray,
        rows: np.ndarray | None = None,
    ) -> None:
        self.info = info
        self.split = split
        self._images = images  # (N_total, H, W, C) uint8
        self._factors = np.asarray(factors, dtype=np.int64).reshape(len(images), -1)
        self._attributes = np.asarray(attributes, dtype=np.float32).reshape(len(images), -1)
        self.rows = np.arange(len(images)) if rows is None else np.asarray(rows, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.rows)

    def get_batch(self, indices: np.ndarray) -> dict[str, torch.Tensor]:
        rows = self.rows[indices]
        order = np.argsort(rows)  # sorted reads are much faster on a memory map
        raw = np.empty((len(rows),) + self._images.shape[1:], dtype=np.uint8)
        raw[order] = self._images[rows[order]]
        image = torch.from_numpy(raw).permute(0, 3, 1, 2).float().div_(255.0)
        return {
            "image": image.contiguous(),
            "factors": torch.from_numpy(self._factors[rows]),
            "attributes": torch.from_numpy(self._attributes[rows]),
            "index": torch.from_numpy(indices.astype(np.int64)),
        }

    def factor_array(self) -> np.ndarray:
        return self._factors[self.rows]

    def attribute_array(self) -> np.ndarray:
        return self._attributes[self.rows]


def split_rows(n: int, test_fraction: float, seed: int, split: str) -> np.ndarray:
    """Deterministic random split of ``range(n)``; the same seed always gives the same split."""
    check_split(split)
    perm = np.random.Generator(np.random.Philox(seed)).permutation(n)
    n_test = int(round(n * test_fraction))
    if split == "all":
        return np.arange(n)
    rows = perm[:n_test] if split == "test" else perm[n_test:]
    return np.sort(rows)


def seed_of(*parts: Any) -> int:
    """A stable 63-bit seed from a tuple of ints/strings (no Python hash randomisation)."""
    import hashlib

    digest = hashlib.sha256(repr(parts).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


__all__ = [
    "ArrayDataset",
    "DatasetInfo",
    "Factor",
    "FactorDataset",
    "collate",
    "field",
    "split_rows",
]
