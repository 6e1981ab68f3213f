"""A study spec (YAML) and its expansion into runs, every name, key and metric checked before
anything trains.

```yaml
name: mddae-table1
data: faces            # one name, or a list (then every entry runs on each)
steps: 2000
seeds: [0, 1, 2]
preset: fast           # optional
metrics: [psnr, ssim, counterfactual]
cpus_per_run: 1        # optional
evaluate:              # optional: evaluate's settings (its defaults otherwise)
  fast: true
  params: {factorvae: {num_train: 2000}}   # a metric's parameters, as --param factorvae.num_train=2000
runs:
  - method: mddae
  - method: betavae
    label: betavae-b4               # optional; claims name entries by label (default: method)
    set: {model.beta: 4}           # any --set key
    grid: {model.latent_dim: [8, 16]}   # optional: expands the entry over the product
  - method: mddae-ae
    metrics: [psnr, ssim]          # optional: this entry's metrics instead of the study's
claims:
  - "mddae.psnr >= betavae-b4.psnr - 0.5"
```

An entry with a grid becomes one entry per grid point, labelled ``LABEL[key=value,…]``. A run is
one (entry, dataset, seed); its name comes from its method, dataset, seed and set keys, so it is
the same on every rerun. The checks reuse the run configuration's (``RunConfig.apply``: unknown
keys, wrong types, out-of-range values) and the metric registry's (``registry.check``: unknown
or inapplicable metrics); their messages are prefixed with where in the spec the problem is.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ..errors import UsageError

TOP_KEYS = ("name", "data", "steps", "seeds", "preset", "metrics", "runs", "claims", "cpus_per_run", "data_root",
            "evaluate")
# the evaluation settings a spec may give (metrics.evaluate.Settings; the rest keep evaluate's defaults)
EVALUATE_KEYS = {"num_train": int, "num_test": int, "image_rows": int, "seed": int, "fast": bool, "floors": bool,
                 "params": dict}  # params: {metric: {key: value}}, as evaluate's --param
ENTRY_KEYS = ("method", "label", "set", "grid", "metrics")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")


@dataclass(frozen=True)
class Entry:
    label: str
    method: str
    sets: dict[str, Any]  # set ∪ the grid point
    metrics: tuple[str, ...] | None = None  # the entry's own list (else the study's)


@dataclass(frozen=True)
class Run:
    name: str
    entry: Entry
    data: str
    seed: int
    config: Any  # RunConfig

    def config_dict(self) -> dict:
        return self.config.to_dict()


@dataclass
class Study:
    name: str
    data: list[str]
    steps: int
    seeds: list[int]
    preset: str
    metrics: list[str] | None
    entries: list[Entry]
    claims: list[str]
    cpus_per_run: int = 1
    data_root: str | None = None
    evaluate: dict[str, Any] = field(default_factory=dict)  # overrides of evaluate's Settings
    runs: list[Run] = field(default_factory=list)
    source: str = ""

    def labels(self) -> list[str]:
        return [e.label for e in self.entries]

    def metrics_for(self, entry: Entry) -> tuple[str, ...] | None:
        """The entry's metrics, else the study's (None: ``evaluate``'s defaults)."""
        chosen = entry.metrics if entry.metrics is not None else self.metrics
        return tuple(chosen) if chosen is not None else None


def _fail(where: str, message: str):
    raise UsageError(f"study spec {where}: {message}")


def _typed(value: Any, tp: type, where: str, what: str):
    ok = isinstance(value, tp) and not (tp is int and isinstance(value, bool))
    if not ok:
        _fail(where, f"{what} must be {tp.__name__}, got {type(value).__name__} {value!r}")
    return value


def _str_list(value: Any, where: str) -> list[str]:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(v, str) and v for v in items):
        _fail(where, f"expected a name or a non-empty list of names, got {value!r}")
    return list(items)


def run_name(method: str, data: str, seed: int, sets: dict[str, Any]) -> str:
    """``METHOD-DATA-sSEED`` and, with set keys, a readable tail and a hash of them: stable."""
    base = f"{method}-{data}-s{seed}"
    if not sets:
        return base
    text = json.dumps(sorted(sets.items()), default=str)
    digest = hashlib.sha256(text.encode()).hexdigest()[:6]
    tail = "_".join(f"{k.split('.')[-1]}={v}" for k, v in sorted(sets.items()))
    tail = re.sub(r"[^A-Za-z0-9_.=+-]", "", tail)[:48]
    return f"{base}-{tail}-{digest}"


def _entries(raw: Any) -> list[Entry]:
    if not isinstance(raw, list) or not raw:
        _fail("runs", "expected a non-empty list of entries, each with a method")
    out: list[Entry] = []
    for i, item in enumerate(raw):
        where = f"runs[{i}]"
        if not isinstance(item, dict):
            _fail(where, f"expected a mapping with a method, got {item!r}")
        unknown = sorted(set(item) - set(ENTRY_KEYS))
        if unknown:
            _fail(f"{where}.{unknown[0]}", f"unknown key; valid entry keys: {', '.join(ENTRY_KEYS)}")
        if "method" not in item:
            _fail(where, "no method (e.g. method: betavae)")
        method = _typed(item["method"], str, f"{where}.method", "method")
        label = _typed(item.get("label", method), str, f"{where}.label", "label")
        if not _NAME.match(label):
            _fail(f"{where}.label", f"{label!r}: use letters, digits and _ . + - (claims name entries by it)")
        sets = item.get("set") or {}
        grid = item.get("grid") or {}
        for key, value in (("set", sets), ("grid", grid)):
            if not isinstance(value, dict):
                _fail(f"{where}.{key}", f"expected a mapping of config keys, got {value!r}")
        for k, values in grid.items():
            if not isinstance(values, list) or not values:
                _fail(f"{where}.grid.{k}", f"expected a non-empty list of values, got {values!r}")
            if k in sets:
                _fail(f"{where}.grid.{k}", "is also under set; give it in one place")
        metrics = tuple(_str_list(item["metrics"], f"{where}.metrics")) if item.get("metrics") is not None else None
        if not grid:
            out.append(Entry(label, method, dict(sets), metrics))
            continue
        keys = list(grid)
        for point in itertools.product(*(grid[k] for k in keys)):
            assigned = dict(zip(keys, point))
            suffix = ",".join(f"{k}={v}" for k, v in assigned.items())
            out.append(Entry(f"{label}[{suffix}]", method, {**sets, **assigned}, metrics))
    labels = [e.label for e in out]
    dup = sorted({x for x in labels if labels.count(x) > 1})
    if dup:
        _fail("runs", f"label {dup[0]!r} is used by two entries; give each a distinct label")
    return out


def _evaluate(raw: Any) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        _fail("evaluate", f"expected a mapping of evaluation settings ({', '.join(EVALUATE_KEYS)}), got {raw!r}")
    for key, value in raw.items():
        if key not in EVALUATE_KEYS:
            _fail(f"evaluate.{key}", f"unknown key; valid evaluate keys: {', '.join(EVALUATE_KEYS)}")
        _typed(value, EVALUATE_KEYS[key], f"evaluate.{key}", key)
        if EVALUATE_KEYS[key] is int and key != "seed" and value < 1:
            _fail(f"evaluate.{key}", f"{value}: must be ≥ 1 (rows to score)")
        if key == "seed" and value < 0:
            _fail("evaluate.seed", f"{value}: must be ≥ 0")
        if key == "params" and not all(isinstance(v, dict) for v in value.values()):
            _fail("evaluate.params", f"expected {{metric: {{key: value}}}}, e.g. {{factorvae: {{num_train: 2000}}}}; "
                  f"got {value!r}")
    return dict(raw)


def parse(raw: Any, source: str = "") -> Study:
    """A :class:`Study` from the YAML mapping, its shape and types checked (not yet its keys)."""
    if not isinstance(raw, dict):
        raise UsageError(f"study spec{(' ' + source) if source else ''}: expected a YAML mapping with name, data, "
                         f"steps, seeds and runs")
    unknown = sorted(set(raw) - set(TOP_KEYS))
    if unknown:
        _fail(unknown[0], f"unknown key; valid keys: {', '.join(TOP_KEYS)}")
    for key in ("name", "data", "steps", "seeds", "runs"):
        if key not in raw:
            _fail(key, "missing (a study needs name, data, steps, seeds and runs)")
    name = _typed(raw["name"], str, "name", "name")
    if not _NAME.match(name):
        _fail("name", f"{name!r}: use letters, digits and _ . + -")
    steps = _typed(raw["steps"], int, "steps", "steps")
    if steps < 1:
        _fail("steps", f"{steps}: must be ≥ 1")
    seeds = raw["seeds"]
    if not isinstance(seeds, list) or not seeds:
        _fail("seeds", f"expected a non-empty list of integers, got {seeds!r}")
    for s in seeds:
        if _typed(s, int, "seeds", "each seed") < 0:
            _fail("seeds", f"{s}: seeds must be ≥ 0")
    if len(set(seeds)) != len(seeds):
        _fail("seeds", f"{seeds}: a seed is listed twice")
    preset = raw.get("preset", "fast")
    if preset not in ("fast", "paper"):
        _fail("preset", f"{preset!r}: expected fast or paper")
    metrics = _str_list(raw["metrics"], "metrics") if raw.get("metrics") is not None else None
    cpus = _typed(raw.get("cpus_per_run", 1), int, "cpus_per_run", "cpus_per_run")
    if cpus < 1:
        _fail("cpus_per_run", f"{cpus}: must be ≥ 1")
    claims = raw.get("claims") or []
    if not isinstance(claims, list) or not all(isinstance(c, str) for c in claims):
        _fail("claims", f"expected a list of strings like \"a.psnr >= b.psnr\", got {claims!r}")
    data_root = raw.get("data_root")
    if data_root is not None:
        _typed(data_root, str, "data_root", "data_root")
    return Study(evaluate=_evaluate(raw.get("evaluate")),
                 name=name, data=_str_list(raw["data"], "data"), steps=steps, seeds=list(seeds), preset=preset,
                 metrics=metrics, entries=_entries(raw["runs"]), claims=list(claims), cpus_per_run=cpus,
                 data_root=data_root, source=source)


def load(path: str | Path) -> Study:
    """Read, parse and fully validate a spec file: every run's config built, every metric checked."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"study spec {path}: no such file")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise UsageError(f"study spec {path}: not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    study = parse(raw, str(path))
    return validate(study)


def validate(study: Study) -> Study:
    """Build every run's RunConfig and check its metrics against the registry; fill ``runs``."""
    from ..api import build_run_config
    from ..data import registry as data_registry
    from ..metrics import registry as metric_registry
    from ..models import registry as model_registry
    from .claims import parse_claim

    runs: list[Run] = []
    checked: set[tuple] = set()
    for entry in study.entries:
        for data in study.data:
            where = f"entry {entry.label!r} on {data}"
            seeded = []
            for seed in study.seeds:  # every run's config: keys, types, ranges (the seed is one more key)
                try:
                    seeded.append(build_run_config(entry.method, data, preset=study.preset, data_root=study.data_root,
                                                   overrides={"train.steps": study.steps, "train.seed": seed,
                                                              **entry.sets}))
                except UsageError as exc:
                    raise UsageError(f"study spec {where}: {exc}") from None
            cfg = seeded[0]
            metrics = study.metrics_for(entry)
            if (entry.method, data, metrics) not in checked:
                checked.add((entry.method, data, metrics))
                model = model_registry.build(entry.method, data_registry.describe(data), preset=study.preset,
                                             config=cfg.model)
                try:
                    metric_registry.check(model, data_registry.describe(data), list(metrics) if metrics else None)
                except UsageError as exc:
                    raise UsageError(f"study spec metrics ({where}): {exc}") from None
            for seed, config in zip(study.seeds, seeded):
                runs.append(Run(run_name(entry.method, data, seed, entry.sets), entry, data, seed, config))
    names = [r.name for r in runs]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise UsageError(f"study spec runs: two entries make the same run {dup[0]!r} (same method, data and set "
                         "keys); drop one or change its set keys")
    try:
        metric_registry.resolve_params(study.evaluate.get("params"))
    except UsageError as exc:
        raise UsageError(f"study spec evaluate.params: {exc}".replace("--param ", "")) from None
    for claim in study.claims:
        parse_claim(claim, study.labels())
    study.runs = runs
    return study
