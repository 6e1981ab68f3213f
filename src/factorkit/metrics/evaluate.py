"""The evaluation driver: model + dataset → arrays → metric cores → ``metrics.json``.

Rows: up to ``num_train`` (10,000) rows of the **train** split and ``num_test`` (5,000) of the
**test** split, drawn without replacement for a seed — so train and test rows are disjoint (on
faces even their identities are). Every metric's wall time is recorded.
"""

from __future__ import annotations

import json
import os
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import UsageError
from ..files import atomic_write_text
from . import arrays, floors
from . import editing as E
from . import factors as F
from . import images as I
from . import registry as R

ALL_METRICS = R.ALL_METRICS


# --- arrays API ------------------------------------------------------------------------------------

compute = arrays.compute  # one array metric by registry name (arrays.py), kept here for its old import path


# --- model / dataset -----------------------------------------------------------------------------


def applicable_metrics(model, info) -> list[str]:
    """Metric names that apply to this model on this dataset (from the registry)."""
    return R.applicable(model, info)


@dataclass
class Settings:
    num_train: int = 10000
    num_test: int = 5000
    seed: int = 0
    fast: bool = False  # each metric's documented fast mode (MetricSpec.fast: DCI, downstream, InfoM/InfoC)
    image_rows: int = 1000  # test images for image metrics and edits
    attributes: tuple[str, ...] | None = None  # edit metrics: which attributes (default all)
    params: dict[str, dict[str, Any]] = field(default_factory=dict)  # per-metric overrides of the registry's
    floors: bool = True  # measure each score's floor on the same rows (floors.py; cached)


def rows(n_total: int, n: int, seed: int) -> np.ndarray:
    """``n`` of ``n_total`` row indices without replacement for a seed, sorted (all if n ≥ n_total)."""
    if n >= n_total:
        return np.arange(n_total)
    return np.sort(np.random.default_rng(seed).choice(n_total, n, replace=False))



@torch.no_grad()
def _encode(model, dataset, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    codes = []
    for i in range(0, len(rows), 512):
        batch = dataset.get_batch(rows[i : i + 512])
        codes.append(F.as_array(model.representation(batch["image"]), np.float64))
    return np.concatenate(codes), dataset.factor_array()[rows], dataset.attribute_array()[rows]


def edit_attributes(model, info, requested=None) -> list[str]:
    """The attributes edit metrics score: ``requested`` (each checked against the dataset and
    against what the model edits — a UsageError names the ones it can), else every one the model
    edits (all of the dataset's for a model that edits them all)."""
    editable = model.edit_attributes() if model.supports("edit") else list(info.attributes)
    if not requested:
        return editable
    for a in requested:
        if info.attributes[info.attribute_index(a)] not in editable:
            raise UsageError(f"attribute {a!r}: {model.name} edits only {', '.join(editable)}")
    return list(requested)


class Context(arrays.Memo):
    """What a metric's ``run`` sees: the model, the test and train datasets, the settings, the
    encoded rows (``c_tr, f_tr, a_tr, c_te, f_te, a_te``) and the record being filled."""

    def __init__(self, model, dataset, train_dataset, settings: Settings, progress: bool) -> None:
        self.model, self.dataset, self.train_dataset, self.settings = model, dataset, train_dataset, settings
        self.info = dataset.info
        self.progress = progress
        self.say = _Say(progress)
        self.results: dict[str, Any] = {}
        self.details: dict[str, Any] = {}
        self.seconds: dict[str, float] = {}
        self.reference: dict[str, Any] = {}
        self.floors: dict[str, float] = {}
        self.floor_kind: dict[str, str] = {}
        self.continuous = False  # dataset factors are discrete; plain tables may be real-valued (arrays.py)
        self._tick: Callable[[int], None] = lambda n: None
        self._classifier = None
        self._memo: dict = {}


    def bar(self, name: str, total: int) -> "_Bar":
        return _Bar(self.progress, name, total)

    def encode_rows(self) -> None:
        s = self.settings
        t = time.perf_counter()
        tr_rows = rows(len(self.train_dataset), s.num_train, s.seed)
        te_rows = rows(len(self.dataset), s.num_test, s.seed + 1)
        self.say(f"encoding {len(tr_rows)} train + {len(te_rows)} test images")
        self.c_tr, self.f_tr, self.a_tr = _encode(self.model, self.train_dataset, tr_rows)
        self.c_te, self.f_te, self.a_te = _encode(self.model, self.dataset, te_rows)
        self.seconds["encode"] = round(time.perf_counter() - t, 2)

    def record(self, name: str, fn: Callable[[], dict], prefixed: bool = True) -> None:
        """Run ``fn`` and file its values under ``name``: numbers are scores (``name.key``, or
        ``key`` where the metric names its own keys), ``_key`` and non-numbers are details."""
        self.say(f"{name} …")
        t = time.perf_counter()
        value = fn()
        self.seconds[name] = round(time.perf_counter() - t, 2)
        self._tick(1)  # the per-attribute metrics' bar (one step per attribute)
        numbers = floors.scores(name, value, prefixed)
        self.results.update(numbers)
        for k, v in value.items():
            if k.startswith("_"):
                self.details[f"{name}.{k[1:]}"] = np.asarray(v).tolist()
            elif (f"{name}.{k}" if prefixed else k) not in numbers:
                self.details[f"{name}.{k}"] = v

    def measure_floor(self, spec, params: dict) -> None:
        """File the floor of every score ``spec`` produced (floors.py): random codes where the
        metric reads codes, else the majority-class rate or the plain reconstruction."""
        t = time.perf_counter()
        if spec.uses_codes or spec.group == "interventional":
            self.say(f"{spec.name} floor (random codes, cached) …")
            values, kind = floors.random_code_floor(self, spec, params), "random-codes"
        elif spec.per_attribute:
            values, kind = floors.edit_floors(self, spec, self.results)
        else:
            return
        for k, v in values.items():
            if k in self.results:
                self.floors[k], self.floor_kind[k] = v, kind
        self.seconds[f"floor.{spec.name}"] = round(time.perf_counter() - t, 2)

    def attributes(self) -> list[str]:
        return edit_attributes(self.model, self.info, self.settings.attributes)

    def classifier(self):
        """The evaluation classifier of edit-success (trained once per dataset, then cached)."""
        if self._classifier is None:
            from .classifier import evaluation_classifier

            self.say("evaluation classifier (trained once, then cached) …")
            t = time.perf_counter()
            self._classifier = evaluation_classifier(self.train_dataset, self.dataset)
            self.seconds["classifier"] = round(time.perf_counter() - t, 2)
            self.details["classifier"] = self._classifier[1]
        return self._classifier

    def representation_chunks(self) -> dict[str, slice] | None:
        chunks = getattr(self.model, "retrieval_chunks", None)
        if callable(chunks):
            return chunks()
        slices = self.model.encode(self.dataset.get_batch(np.arange(1))["image"]).slices
        width = self.c_te.shape[1]
        if slices and len(slices) > 1 and all(s.stop <= width for s in slices.values()):
            return dict(slices)
        return None

    def image_metrics(self, names: list[str]) -> None:
        """The image metrics together: one pass of reconstructions over ``image_rows`` test images."""
        t = time.perf_counter()
        picked = rows(len(self.dataset), self.settings.image_rows, self.settings.seed + 2)
        x = E._images(self.dataset, picked)
        parts = []
        with self.bar("images", (len(x) + 255) // 256) as bar:
            for i in range(0, len(x), 256):
                parts.append(self.model.reconstruct(x[i : i + 256]).cpu())
                bar(1)
        recon = torch.cat(parts)
        self.results.update(I.summarize({k: v for k, v in I.per_image(x, recon).items() if k in names}))
        self.seconds["images"] = round(time.perf_counter() - t, 2)


def evaluate(model, dataset, metrics: list[str] | None = None, train_dataset=None, settings: Settings | None = None,
             progress: bool = False, out: str | Path | None = None) -> dict[str, Any]:
    """Run metrics on the held-out split ``dataset``; returns (and with ``out`` writes) the
    metrics.json structure of contract.md. Which metrics exist, apply and run by default, and
    their parameters, come from :mod:`factorkit.metrics.registry`."""
    s = settings or Settings()
    info = dataset.info
    requested = R.check(model, info, metrics)
    params = R.resolve_params(s.params)
    model.eval()
    if train_dataset is None:
        from ..data.registry import load

        train_dataset = load(info.name, "train", root=getattr(dataset, "root", None), options=getattr(dataset, "options", None))
    ctx = Context(model, dataset, train_dataset, s, progress)
    specs = [R.METRICS[name] for name in requested]
    if any(m.uses_codes for m in specs):
        ctx.encode_rows()
    images = [m.name for m in specs if m.group == "images"]
    for m in specs:
        if m.group == "images":
            if m.name == images[0]:
                ctx.image_metrics(images)
        elif m.per_attribute:
            with ctx.bar(m.name, len(ctx.attributes())) as bar:
                ctx._tick = bar
                m.run(ctx, params[m.name])
            ctx._tick = lambda n: None
        else:
            ctx.record(m.name, lambda m=m: m.run(ctx, params[m.name]), prefixed=m.prefixed)
        if s.floors:
            ctx.measure_floor(m, params[m.name])

    record = {
        "model": model.name,
        "data": info.name,
        "step": _step(model),
        "metrics": ctx.results,
        "seconds": ctx.seconds,
        "details": ctx.details,
        "floors": ctx.floors,
        "floor_kind": ctx.floor_kind,
        "reference": ctx.reference,
        "settings": {"num_train": s.num_train, "num_test": s.num_test, "seed": s.seed, "fast": s.fast},
        "params": {name: params[name] for name in requested},  # each metric's parameters, as run
    }
    if out is not None:
        write_metrics(Path(out), record)
    return record


_MERGED = ("metrics", "seconds", "details", "floors", "floor_kind", "reference", "params")


def write_metrics(path: Path, record: dict) -> None:
    """Merge into an existing metrics.json (metrics computed earlier stay), atomically."""
    if path.is_file():
        try:
            old = json.loads(path.read_text())
            if not isinstance(old, dict) or not all(isinstance(old.get(k, {}), dict) for k in _MERGED):
                raise ValueError("not a metrics record")
        except (ValueError, UnicodeDecodeError):
            # nothing is lost: the damaged file is kept beside the new one, and the user is told
            os.replace(path, path.with_name(path.name + ".damaged"))
            warnings.warn(f"{path} was damaged; kept it as {path.name}.damaged and wrote this evaluation's scores",
                          stacklevel=2)
            old = {}
        if old.get("step") == record["step"]:
            for key in _MERGED:
                merged = dict(old.get(key, {}))
                merged.update(record[key])
                record[key] = merged
    atomic_write_text(path, json.dumps(record, indent=1, default=_jsonable))


def _jsonable(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def _step(model) -> int | None:
    cfg = getattr(model, "run_config", None)
    return getattr(model, "loaded_step", None) or (cfg.train.steps if cfg is not None else None)


class _Say:
    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def __call__(self, text: str) -> None:
        if self.enabled:
            import sys

            print(f"  {text}", file=sys.stderr, flush=True)


class _Bar:
    """A rich progress bar for the long interventional metrics (points done / total)."""

    def __init__(self, enabled: bool, name: str, total: int) -> None:
        self.enabled, self.name, self.total = enabled, name, total
        self._p = None

    def __enter__(self):
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            console = Console(stderr=True)  # stdout stays the scores' (--json); nothing drawn into a pipe or file
            if not console.is_terminal:
                return self
            self._p = Progress(TextColumn(f"  {self.name}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                               console=console, transient=True)
            self._p.start()
            self._task = self._p.add_task(self.name, total=self.total)
        return self

    def __call__(self, n: int = 1) -> None:
        if self._p is not None:
            self._p.advance(self._task, n)

    def __exit__(self, *exc) -> None:
        if self._p is not None:
            self._p.stop()
