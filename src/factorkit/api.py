"""The Python API of contract.md: train, load (evaluate lives in metrics.evaluate)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch

from .config import RunConfig, TrainConfig, load_run_config, replace_checked
from .data.base import DatasetInfo, FactorDataset
from .errors import UsageError
from .models.base import Model
from .models.registry import model_class
from .train import checkpoint as ckpt
from .train.trainer import RunResult, Trainer


def default_out(model_name: str, data_name: str) -> Path:
    return Path("runs") / f"{model_name}-{data_name}-{time.strftime('%Y%m%d-%H%M%S')}"


def run_config_for(model: Model, dataset: FactorDataset, **train_overrides: Any) -> RunConfig:
    """The RunConfig a model + dataset pair trains with: preset train values, then overrides."""
    from .data.registry import dataset_options_class

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
    """Train ``model`` on ``dataset`` and write a run directory (see contract.md)."""
    cfg = config or run_config_for(model, dataset, steps=steps, **train_overrides)
    out = Path(out) if out is not None else default_out(model.name, dataset.info.name)
    return Trainer(model, dataset, cfg, out, resume=resume, progress=progress).fit()


def load(run_dir: str | Path, map_location: str | torch.device = "cpu") -> Model:
    """Rebuild a trained model from its run directory: config.yaml + dataset.json + weights
    (``model.safetensors``, else the newest valid checkpoint). No pickles."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UsageError(f"{run_dir}: no such run directory")
    cfg = load_run_config(run_dir / "config.yaml")
    info_path = run_dir / "dataset.json"
    if not info_path.is_file():
        raise UsageError(f"{info_path}: missing; is {run_dir} a complete factorkit run directory?")
    info = DatasetInfo.from_dict(json.loads(info_path.read_text()))
    cls = model_class(cfg.model_name)
    model = cls(cfg.model, info)
    weights = run_dir / "model.safetensors"
    if weights.is_file():
        state = ckpt.load_weights(weights)
        step = None
    else:
        found = ckpt.load_newest(run_dir / "checkpoints")
        if found is None:
            raise UsageError(f"{run_dir}: no model.safetensors and no valid checkpoint; train it first")
        step, tensors, _ = found
        state = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    model.load_state_dict(state)
    model.to(map_location)
    model.eval()
    model.run_config = cfg
    model.run_dir = run_dir
    model.preset = cfg.preset
    model.loaded_step = step
    return model
