"""Datasets with ground-truth factors: procedural (shapes2d, faces), bundled (sklearn-digits)
and readers of local files (digits, colored-digits, celeba, folder)."""

from .base import DatasetInfo, Factor, FactorDataset, collate
from .registry import describe, load, names

__all__ = ["DatasetInfo", "Factor", "FactorDataset", "collate", "describe", "load", "names"]
