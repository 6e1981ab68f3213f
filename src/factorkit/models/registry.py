"""Model names → classes, and building a model (with its preset) for a dataset."""

from __future__ import annotations

from typing import Any

from ..config import replace_checked
from ..data.base import DatasetInfo
from ..errors import UsageError
from .ae import AutoEncoder
from .base import Model
from .betavae import BetaVAE
from .mddae import VARIANTS as MDDAE_VARIANTS
from .mixing import VARIANTS as MIXING_VARIANTS

REGISTRY: dict[str, type[Model]] = {}


def register(cls: type[Model]) -> type[Model]:
    REGISTRY[cls.name] = cls
    return cls


for _cls in (AutoEncoder, BetaVAE, *MDDAE_VARIANTS, *MIXING_VARIANTS):
    register(_cls)


def names() -> list[str]:
    return list(REGISTRY)


def model_class(name: str) -> type[Model]:
    if name not in REGISTRY:
        raise UsageError(f"unknown model {name!r}; valid: {', '.join(REGISTRY)}")
    return REGISTRY[name]


PRESETS = ("fast", "paper")


def preset_overrides(name: str, info: DatasetInfo, preset: str) -> dict[str, Any]:
    if preset not in PRESETS:
        raise UsageError(f"unknown preset {preset!r}; valid: {', '.join(PRESETS)}")
    return dict(model_class(name).presets(info).get(preset, {}))


def build(name: str, dataset: Any, preset: str = "fast", **overrides: Any) -> Model:
    """Build model ``name`` for a dataset (a FactorDataset or its DatasetInfo).

    ``overrides`` are model config fields (``beta=4``); the preset's ``train.*`` values are kept
    on the model as ``model.train_overrides`` for :func:`factorkit.train`.
    """
    info = dataset if isinstance(dataset, DatasetInfo) else dataset.info
    cls = model_class(name)
    cls.check_data(info)
    preset_values = preset_overrides(name, info, preset)
    model_values = {k.split(".", 1)[1]: v for k, v in preset_values.items() if k.startswith("model.")}
    model_values.update(overrides)
    config = replace_checked(cls.Config(), "model", model_values)
    model = cls(config, info)
    model.preset = preset
    model.train_overrides = {k.split(".", 1)[1]: v for k, v in preset_values.items() if k.startswith("train.")}
    return model
