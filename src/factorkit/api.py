"""The Python API of contract.md: train, load (evaluate lives in metrics.evaluate)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from .config import RunConfig, TrainConfig, replace_checked
from .data.base import FactorDataset
from .data.registry import dataset_options_class
from .errors import UsageError
from .models.base import Model
from .train.rundir import load_model as load
from .train.trainer import RunResult, Trainer
from .viz.grids import image_rows

__all__ = ["build_run_config", "default_out", "load", "run_config_for", "train"]


def default_out(model_name: str, data_name: str) -> Path:
    return Path("runs") / f"{model_name}-{data_name}-{time.strftime('%Y%m%d-%H%M%S')}"


def run_config_for(model: Model, dataset: FactorDataset, **train_overrides: Any) -> RunConfig:
    """The RunConfig a model + dataset pair trains with: preset train values, then overrides."""
    values = dict(getattr(model, "train_overrides", {}))
    values.update({k: v for k, v in train_overrides.items() if v is not None})
    options = getattr(dataset, "options", None) or dataset_options_class(dataset.info.name)()
    return RunConfig(
        model_name=model.name,
        data_name=dataset.info.name,
        model=model.config,
        data=options,
        train=replace_checked(TrainConfig(), "train", values),
        data_root=getattr(dataset, "root", None),
        preset=getattr(model, "preset", "fast"),
    )


def build_run_config(model_name: str, data_name: str, preset: str | None = None, data_root: str | None = None,
                     overrides: dict[str, Any] | None = None, assignments: list[str] | None = None) -> RunConfig:
    """The RunConfig of a new run: defaults → preset → typed ``overrides`` ({"train.steps": 20,
    "model.beta": 4}) → ``assignments`` as typed on the command line (["model.beta=4"]); later
    wins. Every key and value is checked (UsageError naming the valid keys)."""
    from .data import registry as data_registry
    from .models import registry as model_registry

    cls = model_registry.model_class(model_name)
    entry = data_registry.entry(data_name)
    if entry.info.needs_data_root and not data_root:
        raise UsageError(f"dataset {data_name!r} reads local files: pass --data-root DIR")
    cfg = RunConfig(model_name=model_name, data_name=data_name, model=cls.Config(), data=entry.options(),
                    train=TrainConfig(), data_root=data_root, preset=preset or "fast")
    cfg.apply(model_registry.preset_overrides(model_name, entry.info, cfg.preset))
    cfg.apply({k: v for k, v in (overrides or {}).items() if v is not None})
    cfg.apply_strings(assignments or [])
    return cfg


def train(
    model: Model,
    dataset: FactorDataset,
    steps: int | None = None,
    out: str | Path | None = None,
    resume: bool = False,
    progress: bool | None = None,
    config: RunConfig | None = None,
    **train_overrides: Any,
) -> RunResult:
    """Train ``model`` on ``dataset`` and write a run directory (see contract.md).

    The run's configuration is ``config`` when given (the CLI passes the one it parsed), else the
    model's preset train values; ``steps`` and ``train_overrides`` (``batch_size=32``, …) are
    applied on top of either. Seed the weights with ``fk.models.build(..., seed=S)``; data order
    and every other RNG follow ``train.seed``.
    """
    values = {"steps": steps, **train_overrides}
    if config is None:
        cfg = run_config_for(model, dataset, **values)
    else:
        cfg = config
        cfg.apply({f"train.{k}": v for k, v in values.items() if v is not None})
    out = Path(out) if out is not None else default_out(model.name, dataset.info.name)
    return Trainer(model, dataset, cfg, out, resume=resume, progress=progress, image_grid=image_rows).fit()
