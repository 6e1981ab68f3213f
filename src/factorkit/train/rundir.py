"""A run directory read back: ``config.yaml`` + ``dataset.json`` + weights → a model.

It sits in ``train/`` because it reads what the trainer writes (config, checkpoints) and needs
both registries; ``viz`` and ``api`` import it from here, so nothing below the public API
module has to import that module.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import get_args

import torch

from ..config import RunConfig, field_types, parse_value, read_run_config, replace_checked
from ..data.base import DatasetInfo
from ..data.registry import dataset_options_class
from ..errors import CheckpointError, UsageError
from ..models.base import Model
from ..models.registry import model_class
from . import checkpoint as ckpt


def load_config(path: str | Path) -> RunConfig:
    """Read a run's ``config.yaml`` into a typed :class:`RunConfig`."""
    return read_run_config(path, lambda name: model_class(name).Config, dataset_options_class)


def with_edit_output(cfg: RunConfig, edit_output: str, where: str = "") -> RunConfig:
    """``cfg`` with ``model.edit_output`` set (the CLI's ``--edit-output``): a UsageError when the
    model has no such switch or does not take the value. ``where``: the run, named in the message."""
    types_ = field_types(cfg.model)
    if "edit_output" not in types_:
        raise UsageError(f"--edit-output {edit_output}: {where}{cfg.model_name} has no edit_output switch (its edits "
                         "are always the decoder's image); drop --edit-output")
    try:  # the Literal is parsed as --set parses it
        value = parse_value(edit_output, types_["edit_output"], "model.edit_output")
    except UsageError:
        raise UsageError(f"--edit-output {edit_output}: {where}{cfg.model_name} returns its edits as one of "
                         f"{', '.join(map(str, get_args(types_['edit_output'])))}") from None
    return dataclasses.replace(cfg, model=replace_checked(cfg.model, "model", {"edit_output": value}))


def load_model(run_dir: str | Path, map_location: str | torch.device = "cpu", edit_output: str | None = None) -> Model:
    """Rebuild a trained model from its run directory: config.yaml + dataset.json + weights
    (``model.safetensors``, else the newest valid checkpoint). No pickles. ``edit_output`` (the CLI's
    ``--edit-output``) overrides ``model.edit_output`` for this session: how edits are returned
    (``decoded`` the papers', ``residual``, ``masked``), which the weights do not depend on; a model
    without the switch, or a value it does not take, is a UsageError."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise UsageError(f"{run_dir}: no such run directory")
    cfg = load_config(run_dir / "config.yaml")
    if edit_output is not None:
        cfg = with_edit_output(cfg, edit_output)
    info_path = run_dir / "dataset.json"
    if not info_path.is_file():
        raise UsageError(f"{info_path}: missing; is {run_dir} a complete factorkit run directory?")
    info = DatasetInfo.from_dict(json.loads(info_path.read_text()))
    model = model_class(cfg.model_name)(cfg.model, info)
    weights = run_dir / "model.safetensors"
    if weights.is_file():
        try:
            state = ckpt.load_weights(weights)
        except CheckpointError:
            raise UsageError(f"{weights}: damaged (not a readable safetensors file); {_recovery(run_dir)}") from None
        step = None
    else:
        found = ckpt.load_newest(run_dir / "checkpoints")
        if found is None:
            raise UsageError(f"{run_dir}: no model.safetensors and no valid checkpoint; train it first")
        step, tensors, _ = found
        state = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    try:
        model.load_state_dict(state)
    except RuntimeError:
        raise UsageError(f"{weights if weights.is_file() else run_dir / 'checkpoints'}: the weights do not match "
                         f"config.yaml's {cfg.model_name} model; {_recovery(run_dir)}") from None
    model.to(map_location)
    model.eval()
    model.run_config = cfg
    model.run_dir = run_dir
    model.preset = cfg.preset
    model.loaded_step = step
    return model


def read_metrics(run_dir: str | Path) -> dict:
    """``metrics.json`` of a run ({} when there is none); a damaged one is a UsageError naming it
    and the fix (``factorkit evaluate`` recomputes the scores)."""
    path = Path(run_dir) / "metrics.json"
    if not path.is_file():
        return {}
    try:
        record = json.loads(path.read_text())
        why = None if isinstance(record, dict) and isinstance(record.get("metrics", {}), dict) else \
            "not a metrics record"
    except (ValueError, UnicodeDecodeError) as exc:
        why = f"not valid JSON: {exc.__class__.__name__}"
    if why:
        raise UsageError(f"{path}: damaged ({why}); recompute it with `factorkit evaluate {run_dir}`, "
                         "which moves the damaged file to metrics.json.damaged")
    return record


def read_log(run_dir: str | Path) -> list[dict]:
    """The records of ``log.jsonl`` ([] when there is none). A last line cut by a kill is skipped
    (the trainer drops it on resume); a damaged line before it is a UsageError naming the line."""
    path = Path(run_dir) / "log.jsonl"
    if not path.is_file():
        return []
    try:
        lines = path.read_text().splitlines()
    except UnicodeDecodeError:
        lines = ["\x00"]
    records = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                raise ValueError("not an object")
        except ValueError:
            if n == len(lines):
                continue
            raise UsageError(f"{path}: damaged at line {n} (not a JSON record); {_recovery(Path(run_dir))} "
                             "(a resume rewrites the log up to that checkpoint)") from None
        records.append(record)
    return records


def _recovery(run_dir: Path) -> str:
    """What to do about a damaged run file: resume from the newest good checkpoint, or retrain."""
    good = ckpt.list_checkpoints(run_dir / "checkpoints")
    if good:
        return (f"the newest checkpoint is step {good[-1]}: finish the run from it with "
                f"`factorkit train … --out {run_dir} --resume`, or retrain")
    return "no checkpoint to recover from: retrain the run"
