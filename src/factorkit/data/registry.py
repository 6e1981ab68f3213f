"""Dataset names → loaders, option dataclasses and static descriptions."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, Callable

from ..config import replace_checked
from ..errors import UsageError
from . import celeba, faces, folder, mnist, shapes2d, sklearn_digits
from .base import DatasetInfo, FactorDataset


@dataclass(frozen=True)
class Entry:
    name: str
    options: type
    build: Callable[..., FactorDataset]  # build(split, options, root)
    info: DatasetInfo  # static description (shapes may depend on options)
    factor_note: str = ""


_FOLDER_INFO = DatasetInfo(
    name="folder",
    image_shape=(3, 64, 64),
    needs_data_root=True,
    description="any image folder + attributes.csv from --data-root; attributes from the CSV header",
)

REGISTRY: dict[str, Entry] = {
    e.name: e
    for e in (
        Entry("shapes2d", shapes2d.Options, lambda s, o, r: shapes2d.Shapes2D(s, o), shapes2d.INFO),
        Entry("faces", faces.Options, lambda s, o, r: faces.Faces(s, o), faces.INFO),
        Entry("sklearn-digits", sklearn_digits.Options, lambda s, o, r: sklearn_digits.load(s, o), sklearn_digits.info()),
        Entry("digits", mnist.Options, lambda s, o, r: mnist.load_digits(s, o, r), mnist.DIGITS_INFO),
        Entry("colored-digits", mnist.Options, lambda s, o, r: mnist.ColoredDigits(s, o, r), mnist.COLORED_INFO),
        Entry("celeba", celeba.Options, lambda s, o, r: celeba.load(s, o, r), celeba.info()),
        Entry("folder", folder.Options, lambda s, o, r: folder.load(s, o, r), _FOLDER_INFO, "attributes from attributes.csv"),
    )
}


def names() -> list[str]:
    return list(REGISTRY)


def entry(name: str) -> Entry:
    if name not in REGISTRY:
        raise UsageError(f"unknown dataset {name!r}; valid: {', '.join(REGISTRY)}")
    return REGISTRY[name]


def dataset_options_class(name: str) -> type:
    return entry(name).options


def describe(name: str) -> DatasetInfo:
    return entry(name).info


def load(name: str, split: str = "train", root: str | None = None, options: Any = None, **overrides: Any) -> FactorDataset:
    """Load a dataset by name. ``options`` is the dataset's ``Options`` (or ``None`` for the
    defaults); keyword ``overrides`` change single options, e.g. ``load("faces", size=2000)``."""
    e = entry(name)
    opts = options if options is not None else e.options()
    if overrides:
        opts = replace_checked(opts, "data", overrides)
    dataset = e.build(split, opts, root)
    dataset.options = opts  # recorded in config.yaml by the trainer
    dataset.root = None if root is None else str(root)
    return dataset


def option_names(name: str) -> list[str]:
    return [f.name for f in fields(entry(name).options)]
