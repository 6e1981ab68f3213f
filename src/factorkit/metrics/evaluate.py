"""The evaluation driver: model + dataset → arrays → metric cores → ``metrics.json``.

Rows: up to ``num_train`` (10,000) rows of the **train** split and ``num_test`` (5,000) of the
**test** split, drawn without replacement for a seed — so train and test rows are disjoint (on
faces even their identities are). Every metric's wall time is recorded.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import UsageError
from . import attributes as A
from . import editing as E
from . import factors as F
from . import images as I

FACTOR_METRICS = ("mig", "sap", "dci", "modularity")
INTERVENTIONAL = ("higgins", "factorvae")
ATTRIBUTE_METRICS = ("attr-projection", "attr-linear", "nn-map")
EDIT_METRICS = ("edit-success", "edit-intensity", "counterfactual")
ALL_METRICS = FACTOR_METRICS + INTERVENTIONAL + ATTRIBUTE_METRICS + I.IMAGE_METRICS + EDIT_METRICS

# what a score is worth on random codes (from benchmarks/metric_floors.py, shapes2d) — printed
# beside scores in reports; None where the floor depends on the data (see "reference" per run)
FLOORS = {"mig": 0.0, "sap": 0.0, "dci.disentanglement": 0.0, "dci.completeness": 0.0,
          "modularity": 0.59, "explicitness_test": 0.51}


# --- arrays API ------------------------------------------------------------------------------------


def _split(codes, factors, seed: int, test_fraction: float = 0.2):
    codes, factors = F.as_array(codes, np.float64), F.as_array(factors)
    perm = np.random.default_rng(seed).permutation(len(codes))
    cut = int(round(len(codes) * (1 - test_fraction)))
    tr, te = np.sort(perm[:cut]), np.sort(perm[cut:])
    return codes[tr], factors[tr], codes[te], factors[te]


def compute(name: str, *arrays, seed: int = 0, **hyper: Any) -> dict[str, float]:
    """A ground-truth metric by registry name on arrays. The four-array metrics (sap, dci,
    modularity) given only ``(codes, factors)`` split those rows 80/20 (disjoint, seeded)."""
    fns: dict[str, Callable] = {"mig": F.mig, "sap": F.sap, "dci": F.dci, "modularity": F.modularity}
    if name not in fns:
        raise UsageError(f"compute() takes an array metric ({', '.join(fns)}); {name!r} needs a model or dataset")
    if name == "mig":
        if len(arrays) not in (2, 4):
            raise UsageError("mig takes (codes, factors)")
        return _public(F.mig(arrays[0], arrays[1], **hyper))
    if len(arrays) == 2:
        arrays = _split(arrays[0], arrays[1], seed)
    if len(arrays) != 4:
        raise UsageError(f"{name} takes (codes, factors[, codes_test, factors_test])")
    if name in ("sap", "dci"):
        hyper.setdefault("seed", seed)
    return _public(fns[name](*arrays, **hyper))


def _public(d: dict) -> dict:
    return {k: v for k, v in d.items() if not k.startswith("_")}


# --- model / dataset -----------------------------------------------------------------------------


def applicable_metrics(model, info) -> list[str]:
    """Metric names that apply to this model on this dataset."""
    out: list[str] = []
    if info.factors:
        out += FACTOR_METRICS
        if info.has_generator or info.attributes:
            out += INTERVENTIONAL
    if info.attributes:
        out += ["attr-projection", "attr-linear"]
    if info.factors or info.attributes:
        out.append("nn-map")
    if model.supports("reconstruct"):
        out += list(I.IMAGE_METRICS)
    if model.supports("edit") and info.attributes:
        out += ["edit-success", "edit-intensity"]
        if info.has_counterfactual:
            out.append("counterfactual")
    declared = getattr(model, "metrics", ())
    return [m for m in out if not declared or m in declared]


def default_metrics(model, info) -> list[str]:
    """What ``factorkit evaluate`` runs without --metrics: everything applicable except the two
    interventional scores (≈ 2 million renders each at the study's defaults) and
    edit-intensity (5 pixel SVMs per attribute); ask for those by name."""
    return [m for m in applicable_metrics(model, info) if m not in INTERVENTIONAL + ("edit-intensity", "attr-linear")]


def check_metrics(model, info, metrics: list[str] | None) -> list[str]:
    """The metrics to run; an unknown or inapplicable name is a UsageError saying why."""
    applicable = applicable_metrics(model, info)
    requested = list(metrics) if metrics else default_metrics(model, info)
    for m in requested:
        if m not in ALL_METRICS:
            raise UsageError(f"unknown metric {m!r}; valid: {', '.join(ALL_METRICS)}")
        if m not in applicable:
            raise UsageError(f"metric {m!r} does not apply to model {model.name!r} on {info.name}: "
                             f"{_why_not(m, model, info)}; applicable: {', '.join(applicable)}")
    return requested


@dataclass
class Settings:
    num_train: int = 10000
    num_test: int = 5000
    seed: int = 0
    fast: bool = False  # DCI on 256 quantile bins (documented fast mode)
    nn_map_queries: int = 2000
    image_rows: int = 1000  # test images for image metrics and edits
    attributes: tuple[str, ...] | None = None  # edit metrics: which attributes (default all)
    params: dict[str, dict[str, Any]] = field(default_factory=dict)  # per-metric overrides


def _rows(n_total: int, n: int, seed: int) -> np.ndarray:
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


def evaluate(model, dataset, metrics: list[str] | None = None, train_dataset=None, settings: Settings | None = None,
             progress: bool = False, out: str | Path | None = None) -> dict[str, Any]:
    """Run metrics on the held-out split ``dataset``; returns (and with ``out`` writes) the
    metrics.json structure of contract.md."""
    s = settings or Settings()
    info = dataset.info
    requested = check_metrics(model, info, metrics)
    model.eval()
    if train_dataset is None:
        from ..data.registry import load

        train_dataset = load(info.name, "train", root=getattr(dataset, "root", None), options=getattr(dataset, "options", None))
    say = _Say(progress)
    results: dict[str, Any] = {}
    details: dict[str, Any] = {}
    seconds: dict[str, float] = {}
    reference: dict[str, Any] = {}

    need_codes = any(m in requested for m in FACTOR_METRICS + ATTRIBUTE_METRICS)
    if need_codes:
        t = time.perf_counter()
        tr_rows = _rows(len(train_dataset), s.num_train, s.seed)
        te_rows = _rows(len(dataset), s.num_test, s.seed + 1)
        say(f"encoding {len(tr_rows)} train + {len(te_rows)} test images")
        c_tr, f_tr, a_tr = _encode(model, train_dataset, tr_rows)
        c_te, f_te, a_te = _encode(model, dataset, te_rows)
        seconds["encode"] = round(time.perf_counter() - t, 2)

    def run(name: str, fn: Callable[[], dict]) -> None:
        say(f"{name} …")
        t = time.perf_counter()
        value = fn()
        seconds[name] = round(time.perf_counter() - t, 2)
        for k, v in value.items():
            if k.startswith("_"):
                details[f"{name}.{k[1:]}"] = np.asarray(v).tolist()
            elif isinstance(v, (int, float)) and not isinstance(v, bool):
                # factor and interventional cores name their own keys; others are per attribute
                results[k if name in FACTOR_METRICS + INTERVENTIONAL else f"{name}.{k}"] = float(v)
            else:
                details[f"{name}.{k}"] = v

    p = s.params
    if "mig" in requested:
        run("mig", lambda: F.mig(c_tr, f_tr, **p.get("mig", {})))
    if "sap" in requested:
        run("sap", lambda: F.sap(c_tr, f_tr, c_te, f_te, seed=s.seed, **p.get("sap", {})))
    if "dci" in requested:
        kw = {"backend": "fast" if s.fast else "exact", **p.get("dci", {})}
        run("dci", lambda: F.dci(c_tr, f_tr, c_te, f_te, seed=s.seed, **kw))
    if "modularity" in requested:
        run("modularity", lambda: F.modularity(c_tr, f_tr, c_te, f_te, **p.get("modularity", {})))
    for name in ("higgins", "factorvae"):
        if name in requested:
            fn = F.higgins if name == "higgins" else F.factorvae
            kw = {"seed": s.seed, **p.get(name, {})}
            total = kw.get("num_train", 10000) + kw.get("num_eval", 5000)
            with _Bar(progress, name, total) as bar:
                run(name, lambda fn=fn, kw=kw, bar=bar: fn(dataset, model.representation, progress=bar, **kw))
    for name in ("attr-projection", "attr-linear"):
        if name in requested:
            run(name, lambda: A.attr_projection(c_tr, a_tr, c_te, a_te, names=info.attributes, **p.get(name, {})))
    if "nn-map" in requested:
        labels = np.concatenate([f_te, a_te.astype(np.int64)], 1) if info.attributes and not _attrs_are_factors(info) else f_te
        names = [f.name for f in info.factors] + ([] if _attrs_are_factors(info) else list(info.attributes))
        chunks = model.encode(dataset.get_batch(np.arange(1))["image"]).slices if hasattr(model, "encode") else None
        chunks = _representation_chunks(model, chunks, c_te.shape[1])
        kw = {"num_queries": s.nn_map_queries, "seed": s.seed, **p.get("nn-map", {})}
        run("nn-map", lambda: A.nn_map(c_te, labels, chunks=chunks, names=names, **kw))
        reference["nn-map.random"] = _positive_rate(labels)

    image_requested = [m for m in I.IMAGE_METRICS if m in requested]
    if image_requested:
        t = time.perf_counter()
        rows = _rows(len(dataset), s.image_rows, s.seed + 2)
        x = E._images(dataset, rows)
        recon = E._batched(model.reconstruct, x)
        values = I.summarize({k: v for k, v in I.per_image(x, recon).items() if k in image_requested})
        results.update(values)
        seconds["images"] = round(time.perf_counter() - t, 2)

    attrs = list(s.attributes) if s.attributes else list(info.attributes)
    if "edit-success" in requested:
        from .classifier import evaluation_classifier

        say("evaluation classifier (trained once, then cached) …")
        t = time.perf_counter()
        clf, report = evaluation_classifier(train_dataset, dataset)
        seconds["classifier"] = round(time.perf_counter() - t, 2)
        details["classifier"] = report
        for a in attrs:
            run(f"edit-success.{a}", lambda a=a: E.edit_success(model, dataset, a, clf, report, max_images=s.image_rows, seed=s.seed))
    if "edit-intensity" in requested:
        for a in attrs:
            run(f"edit-intensity.{a}", lambda a=a: E.edit_intensity(model, train_dataset, dataset, a, seed=s.seed,
                                                                   **p.get("edit-intensity", {})))
    if "counterfactual" in requested:
        for a in attrs:
            run(f"counterfactual.{a}", lambda a=a: E.counterfactual(model, dataset, a, max_images=s.image_rows, seed=s.seed))
        gains = [results[f"counterfactual.{a}.gain"] for a in attrs if f"counterfactual.{a}.gain" in results]
        if gains:
            results["counterfactual.gain"] = float(np.mean(gains))

    record = {
        "model": model.name,
        "data": info.name,
        "step": _step(model),
        "metrics": results,
        "seconds": seconds,
        "details": details,
        "reference": {**reference, **{f"floor.{k}": v for k, v in FLOORS.items() if k in results}},
        "settings": {"num_train": s.num_train, "num_test": s.num_test, "seed": s.seed, "fast": s.fast},
    }
    if out is not None:
        write_metrics(Path(out), record)
    return record


def write_metrics(path: Path, record: dict) -> None:
    """Merge into an existing metrics.json (metrics computed earlier stay), atomically."""
    from ..train.checkpoint import atomic_write_text

    if path.is_file():
        try:
            old = json.loads(path.read_text())
            if old.get("step") == record["step"]:
                for key in ("metrics", "seconds", "details", "reference"):
                    merged = dict(old.get(key, {}))
                    merged.update(record[key])
                    record[key] = merged
        except json.JSONDecodeError:
            pass
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


def _attrs_are_factors(info) -> bool:
    names = {f.name for f in info.factors}
    return all(a in names for a in info.attributes)


def _positive_rate(labels: np.ndarray) -> float:
    rates = []
    for j in range(labels.shape[1]):
        p = np.bincount(np.unique(labels[:, j], return_inverse=True)[1].reshape(-1)) / len(labels)
        rates.append(float(np.sum(p * p)))
    return float(np.mean(rates))


def _representation_chunks(model, slices: dict | None, width: int) -> dict[str, slice] | None:
    chunks = getattr(model, "retrieval_chunks", None)
    if callable(chunks):
        return chunks()
    if slices and len(slices) > 1 and all(s.stop <= width for s in slices.values()):
        return dict(slices)
    return None


def _why_not(metric: str, model, info) -> str:
    if metric in EDIT_METRICS and not model.supports("edit"):
        return f"the model cannot edit (it supports {', '.join(sorted(model.operations))})"
    if metric == "counterfactual" and not info.has_counterfactual:
        return "the dataset has no counterfactual renders (only faces does)"
    if metric in I.IMAGE_METRICS:
        return "the model does not reconstruct images"
    if metric in ATTRIBUTE_METRICS + EDIT_METRICS and not info.attributes:
        return "the dataset has no attributes"
    return "the dataset has no ground-truth factors"


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
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self._p = Progress(TextColumn(f"  {self.name}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), transient=True)
            self._p.start()
            self._task = self._p.add_task(self.name, total=self.total)
        return self

    def __call__(self, n: int = 1) -> None:
        if self._p is not None:
            self._p.advance(self._task, n)

    def __exit__(self, *exc) -> None:
        if self._p is not None:
            self._p.stop()
