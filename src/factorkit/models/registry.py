"""Model names → classes, and building a model (with its preset and seed) for a dataset.

A method registers itself where its class is defined::

    @register
    class MyMethod(Model):
        name = "my-method"

Every module of the ``factorkit.models`` package is imported the first time a name is looked
up, so adding a method is one file (``docs/adding_a_method.md``); a class defined elsewhere (a
test, a user's own package) is registered the same way once its module is imported.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

import torch

from ..config import replace_checked
from ..data.base import DatasetInfo
from ..errors import UsageError
from .base import Model

REGISTRY: dict[str, type[Model]] = {}
_NOT_METHODS = {"base", "registry"}
_MODULES: list[str] = []  # factorkit's own model modules, in package order (filled by _discover)
_discovered = False


def register(cls: type[Model]) -> type[Model]:
    """Class decorator: make ``cls`` reachable as ``cls.name`` from the CLI and the API."""
    if not getattr(cls, "name", None) or cls.name == Model.name:
        raise TypeError(f"{cls.__qualname__} needs a class attribute `name` to be registered")
    other = REGISTRY.get(cls.name)
    if other is not None and other.__qualname__ != cls.__qualname__:
        raise TypeError(f"model name {cls.name!r} is taken by {other.__module__}.{other.__qualname__}")
    REGISTRY[cls.name] = cls
    return cls


def _discover() -> None:
    global _discovered
    if _discovered:
        return
    _discovered = True
    package = importlib.import_module(__package__)
    for module in pkgutil.iter_modules(package.__path__):
        if module.name not in _NOT_METHODS and not module.name.startswith("_"):
            _MODULES.append(f"{__package__}.{module.name}")
            importlib.import_module(_MODULES[-1])


def names() -> list[str]:
    """Registered names: factorkit's own in package order (whatever was imported first), then others."""
    _discover()
    order = {name: i for i, name in enumerate(REGISTRY)}

    def key(name: str) -> tuple[int, int]:
        module = REGISTRY[name].__module__
        return (_MODULES.index(module) if module in _MODULES else len(_MODULES), order[name])

    return sorted(REGISTRY, key=key)


def model_class(name: str) -> type[Model]:
    _discover()
    if name not in REGISTRY:
        raise UsageError(f"unknown model {name!r}; valid: {', '.join(names())}")
    return REGISTRY[name]


PRESETS = ("fast", "paper")


def preset_overrides(name: str, info: DatasetInfo, preset: str) -> dict[str, Any]:
    if preset not in PRESETS:
        raise UsageError(f"unknown preset {preset!r}; valid: {', '.join(PRESETS)}")
    return dict(model_class(name).presets(info).get(preset, {}))


def build(name: str, dataset: Any, preset: str = "fast", seed: int = 0, config: Any = None,
          **overrides: Any) -> Model:
    """Build model ``name`` for a dataset (a FactorDataset or its DatasetInfo).

    The weights are initialised from ``seed`` (the global RNG is left as it was), so the same
    call gives the same model. ``config`` is a complete model Config (e.g. from a run's
    config.yaml or the CLI's ``--set``); otherwise the preset's ``model.*`` values are applied,
    then ``overrides`` (``beta=4``). The preset's ``train.*`` values are kept on the model as
    ``model.train_overrides`` for :func:`factorkit.train`.
    """
    info = dataset if isinstance(dataset, DatasetInfo) else dataset.info
    cls = model_class(name)
    cls.check_data(info)
    preset_values = preset_overrides(name, info, preset)
    if config is None:
        model_values = {k.split(".", 1)[1]: v for k, v in preset_values.items() if k.startswith("model.")}
        model_values.update(overrides)
        config = replace_checked(cls.Config(), "model", model_values)
    elif overrides:
        config = replace_checked(config, "model", overrides)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = cls(config, info)
    model.preset = preset
    model.train_overrides = {k.split(".", 1)[1]: v for k, v in preset_values.items() if k.startswith("train.")}
    return model
