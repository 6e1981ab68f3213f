"""Metrics on plain arrays: ``fk.metrics.compute``, ``fk.metrics.score`` and ``factorkit score``.

For people whose model is not in factorkit: a table of codes (N, D) and factors (N, K), or the
two halves of one (train and held-out rows). Every registry metric declared ``arrays`` runs on
it through the same ``run`` as ``factorkit evaluate``, and its floor is measured the same way
(the metric on seeded Gaussian codes of the same shape, same rows; cached).

Rows: given one table, the metrics that read held-out rows (SAP, DCI, modularity, MED,
downstream) get a seeded, disjoint 80/20 split; the others (MIG, IRS, unsupervised, InfoM, InfoC,
InfoE) score every row. Given two tables, the first is the training rows and the second the
held-out rows; the train-only metrics score the first.

Factor kind: ``auto`` calls the factors continuous when any value is not an integer. A metric
whose definition needs discrete factors refuses continuous ones, before anything runs.
"""

from __future__ import annotations

import csv
import io
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UsageError
from . import floors as FL
from . import registry as R

FACTOR_KINDS = ("auto", "discrete", "continuous")
MIN_ROWS = 10


# --- reading and checking ---------------------------------------------------------------------------


def _read_csv(path: Path, label: str) -> tuple[np.ndarray, list[str] | None]:
    text = path.read_text(encoding="utf-8-sig", errors="replace")
    rows = [r for r in csv.reader(io.StringIO(text)) if any(c.strip() for c in r)]
    if not rows:
        raise UsageError(f"{label} {path}: the CSV file is empty")
    header = None
    try:
        [float(c) for c in rows[0]]
    except ValueError:
        header, rows = [c.strip() for c in rows[0]], rows[1:]
    width = len(rows[0]) if rows else 0
    out = np.empty((len(rows), width))
    for n, row in enumerate(rows, start=2 if header else 1):
        if len(row) != width:
            raise UsageError(f"{label} {path}: line {n} has {len(row)} columns, the first data line {width}")
        try:
            out[n - (2 if header else 1)] = [float(c) for c in row]
        except ValueError:
            bad = next(c for c in row if not _is_float(c))
            raise UsageError(f"{label} {path}: line {n}: {bad.strip()!r} is not a number") from None
    return out, header


def _is_float(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def _npz(path: Path, label: str, key: str | None) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except ValueError as exc:
        raise UsageError(f"{label} {path}: holds Python objects, which are not read (allow_pickle is off): "
                         f"save plain numeric arrays") from exc
    if key is not None and key not in arrays:
        if len(arrays) == 1:
            return {key: next(iter(arrays.values()))}
        raise UsageError(f"{label} {path}: no array named {key!r} (it holds {', '.join(arrays) or 'nothing'}); "
                         f"save it as np.savez(FILE, codes=…, factors=…)")
    return arrays


def read_array(text: str, label: str, key: str | None = None) -> tuple[dict[str, np.ndarray], list[str] | None]:
    """The arrays in a ``.npy``, ``.npz`` or ``.csv`` file (``key``: the array wanted from an .npz)."""
    path = Path(text)
    if not path.exists():
        raise UsageError(f"{label} {path}: no such file")
    if path.is_dir():
        raise UsageError(f"{label} {path}: is a folder; give a .npy, .npz or .csv file")
    suffix = path.suffix.lower()
    try:
        if suffix == ".npy":
            try:
                return {key or "array": np.load(path, allow_pickle=False)}, None
            except ValueError as exc:
                raise UsageError(f"{label} {path}: not a plain numeric .npy array ({exc})") from None
        if suffix == ".npz":
            return _npz(path, label, key), None
        if suffix == ".csv":
            array, header = _read_csv(path, label)
            return {key or "array": array}, header
    except OSError as exc:
        raise UsageError(f"{label} {path}: cannot be read ({exc.strerror or exc})") from None
    except EOFError:
        raise UsageError(f"{label} {path}: the file is empty or truncated") from None
    raise UsageError(f"{label} {path}: unknown format {suffix or '(no suffix)'}; give a .npy, .npz or .csv file")


def load_table(codes_path: str, factors_path: str | None = None) -> tuple[np.ndarray, np.ndarray, list[str] | None]:
    """(codes, factors, factor names or None) from one .npz holding ``codes`` and ``factors``, or
    from two files."""
    if factors_path is None:
        if Path(codes_path).suffix.lower() != ".npz":
            raise UsageError(f"CODES {codes_path}: give FACTORS too, or one .npz holding arrays named codes and factors")
        arrays, _ = read_array(codes_path, "CODES", None)
        missing = [k for k in ("codes", "factors") if k not in arrays]
        if missing:
            raise UsageError(f"CODES {codes_path}: no array named {' or '.join(missing)} (it holds "
                             f"{', '.join(arrays) or 'nothing'}); save it as np.savez(FILE, codes=…, factors=…)")
        return arrays["codes"], arrays["factors"], None
    codes, _ = read_array(codes_path, "CODES", "codes")
    factors, names = read_array(factors_path, "FACTORS", "factors")
    return codes["codes"], factors["factors"], names


def check_table(codes: Any, factors: Any, label: str = "") -> tuple[np.ndarray, np.ndarray]:
    """(codes, factors) as float arrays of shapes (N, D) and (N, K), or a UsageError naming the problem."""
    where = f" ({label})" if label else ""
    codes, factors = np.asarray(codes), np.asarray(factors)
    for name, a in (("codes", codes), ("factors", factors)):
        if a.dtype.kind not in "biuf":
            raise UsageError(f"{name}{where}: values of type {a.dtype} are not numbers; give a numeric array")
    if codes.ndim != 2:
        hint = "; for a single code dimension save it as (N, 1)" if codes.ndim == 1 else ""
        raise UsageError(f"codes{where} must be 2-D (N rows, D code dimensions): got shape {codes.shape}{hint}")
    if factors.ndim == 1:
        factors = factors[:, None]  # one factor
    if factors.ndim != 2:
        raise UsageError(f"factors{where} must be 2-D (N rows, K factors) or 1-D (one factor): got shape {factors.shape}")
    if len(codes) != len(factors):
        raise UsageError(f"codes{where} have {len(codes)} rows and factors {len(factors)}: each row must be one sample")
    if len(codes) < MIN_ROWS:
        raise UsageError(f"codes{where}: {len(codes)} rows; the metrics need at least {MIN_ROWS}")
    if codes.shape[1] < 1 or factors.shape[1] < 1:
        raise UsageError(f"codes{where} {codes.shape} and factors {factors.shape}: need at least one column each")
    for name, a in (("codes", codes), ("factors", factors)):
        bad = ~np.isfinite(a.astype(np.float64))
        if bad.any():
            r, c = np.argwhere(bad)[0]
            raise UsageError(f"{name}{where} hold {int(bad.sum())} NaN or infinite values (first at row {r}, column {c}); "
                             "drop or impute those rows")
    return codes.astype(np.float64), factors.astype(np.float64)


def factor_kind(factors: np.ndarray, requested: str = "auto") -> str:
    if requested not in FACTOR_KINDS:
        raise UsageError(f"factor kind {requested!r}; valid: {', '.join(FACTOR_KINDS)}")
    if requested != "auto":
        return requested
    return "continuous" if np.any(factors != np.round(factors)) else "discrete"


# --- the context the registry runners see -------------------------------------------------------------


@dataclass
class _Info:
    factors: list
    name: str = "arrays"
    attributes: tuple = ()


@dataclass
class _Settings:
    seed: int = 0
    fast: bool = False
    params: dict = field(default_factory=dict)


class Memo:
    """``memo(key, compute)``: computed once per key (InfoM and InfoC share one NMI matrix)."""

    _memo: dict

    def memo(self, key, compute):
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]


class ArrayContext(Memo):
    """A plain table in the shape of ``evaluate.Context``: encoded rows, settings, a record."""

    def __init__(self, c_tr, f_tr, c_te, f_te, continuous: bool, seed: int, fast: bool, params: dict,
                 progress: bool, names: list[str] | None = None, memo: dict | None = None) -> None:
        from .evaluate import _Bar

        self.c_tr, self.f_tr, self.c_te, self.f_te = c_tr, f_tr, c_te, f_te
        self.a_tr, self.a_te = np.zeros((len(c_tr), 0)), np.zeros((len(c_te), 0))
        self.continuous = continuous
        self.settings = _Settings(seed, fast, params)
        self.info = _Info(factors=list(names or [f"factor_{j}" for j in range(f_tr.shape[1])]))
        self.dataset = None
        self.reference: dict = {}
        self._progress, self._bar = progress, _Bar
        self._memo: dict = {} if memo is None else memo  # shared by the metrics of one table (InfoM, InfoC)

    def bar(self, name: str, total: int):
        return self._bar(self._progress, name, total)

class _Table:
    """A table's train/test halves, and for a single table the rows train-only metrics score."""

    def __init__(self, codes, factors, codes_test, factors_test, seed: int, test_fraction: float) -> None:
        if codes_test is None:
            if not 0 < test_fraction < 1:
                raise UsageError(f"test fraction {test_fraction}: must lie strictly between 0 and 1")
            perm = np.random.default_rng(seed).permutation(len(codes))
            cut = int(round(len(codes) * (1 - test_fraction)))
            if cut < 2 or len(codes) - cut < 1:
                raise UsageError(f"{len(codes)} rows cannot be split {1 - test_fraction:.0%}/{test_fraction:.0%}")
            tr, te = np.sort(perm[:cut]), np.sort(perm[cut:])
            self.split = (codes[tr], factors[tr], codes[te], factors[te])
            self.whole = (codes, factors, codes[te], factors[te])
        else:
            self.split = self.whole = (codes, factors, codes_test, factors_test)

    def arrays(self, spec) -> tuple:
        return self.split if spec.test_rows else self.whole


def array_metrics() -> list[str]:
    return [m.name for m in R.METRICS.values() if m.arrays]


def applicable(kind: str) -> list[str]:
    return [m.name for m in R.METRICS.values() if m.arrays and kind in m.factor_kinds]


def check_metrics(metrics: list[str] | None, kind: str, params: dict, overrides: dict) -> list[str]:
    """The metrics to run (registry order); unknown, model-only or kind-mismatched names refused."""
    if not metrics:
        return applicable(kind)
    for name in metrics:
        entry = R.spec(name)
        if not entry.arrays:
            raise UsageError(f"metric {name!r} needs a model or a dataset (group {entry.group}); on arrays: "
                             f"{', '.join(array_metrics())}")
        if kind not in entry.factor_kinds:
            raise UsageError(f"metric {name!r} needs discrete factors and these are continuous (non-integer values); "
                             f"pass --factor-kind discrete to treat each distinct value as a class, or choose from "
                             f"{', '.join(applicable('continuous'))}")
    if kind == "continuous":
        if "false" in str(overrides.get("sap", {}).get("continuous", "")).lower():
            raise UsageError("sap.continuous=false: the factors are continuous, so SAP uses its R² branch; "
                             "drop the parameter or pass --factor-kind discrete")
        if params["dci"]["backend"] == "fast":
            raise UsageError("dci.backend=fast fits classifiers only; continuous factors use scikit-learn's "
                             "GradientBoostingRegressor (dci.backend auto, vectorised or sklearn)")
    return [m for m in R.METRICS if m in metrics]


def score(codes, factors, codes_test=None, factors_test=None, metrics: list[str] | None = None, seed: int = 0,
          fast: bool = False, params: dict | None = None, floors: bool = True, kind: str = "auto",
          test_fraction: float = 0.2, progress: bool = False, names: list[str] | None = None) -> dict[str, Any]:
    """Every requested (default: every applicable) array metric on a table, each score with its
    measured floor. Returns ``{"metrics", "floors", "seconds", "details", "rows", "factor_kind"}``."""
    codes, factors = check_table(codes, factors, "train" if codes_test is not None else "")
    if (codes_test is None) != (factors_test is None):
        raise UsageError("give both codes_test and factors_test, or neither")
    if codes_test is not None:
        codes_test, factors_test = check_table(codes_test, factors_test, "test")
        if codes_test.shape[1] != codes.shape[1] or factors_test.shape[1] != factors.shape[1]:
            raise UsageError(f"test table {codes_test.shape}/{factors_test.shape} has other columns than the train "
                             f"table {codes.shape}/{factors.shape}")
    resolved = factor_kind(np.concatenate([factors, factors_test]) if factors_test is not None else factors, kind)
    overrides = params or {}
    all_params = R.resolve_params(overrides)
    requested = check_metrics(metrics, resolved, all_params, overrides)
    table = _Table(codes, factors, codes_test, factors_test, seed, test_fraction)
    out: dict[str, Any] = {"metrics": {}, "floors": {}, "seconds": {}, "details": {}, "factor_kind": resolved}
    memo: dict = {}
    for name in requested:
        spec = R.METRICS[name]
        ctx = ArrayContext(*table.arrays(spec), continuous=resolved == "continuous", seed=seed, fast=fast,
                           params=overrides, progress=progress, names=names, memo=memo)
        t = time.perf_counter()
        value = spec.run(ctx, all_params[name])
        out["seconds"][name] = round(time.perf_counter() - t, 3)
        numbers = FL.scores(name, value, spec.prefixed)
        out["metrics"].update(numbers)
        out["details"].update({f"{name}.{k.lstrip('_')}": v.tolist() if isinstance(v, np.ndarray) else v
                               for k, v in value.items() if (f"{name}.{k}" if spec.prefixed else k) not in numbers})
        if floors:
            t = time.perf_counter()
            out["floors"].update({k: v for k, v in FL.random_code_floor(ctx, spec, all_params[name]).items()
                                  if k in numbers})
            out["seconds"][f"floor.{name}"] = round(time.perf_counter() - t, 3)
        out.setdefault("rows", {})[name] = [int(len(ctx.c_tr)), int(len(ctx.c_te)) if spec.test_rows else 0]
    return out


def compute(name: str, *arrays, seed: int = 0, **hyper: Any) -> dict[str, float]:
    """One array metric by registry name: ``(codes, factors)`` or ``(codes, factors, codes_test,
    factors_test)``; keyword arguments are the metric's parameters (``factorkit metrics``).
    No floor (:func:`score` measures them)."""
    entry = R.spec(name)
    if not entry.arrays:
        raise UsageError(f"compute() takes an array metric ({', '.join(array_metrics())}); {name!r} needs a model "
                         "or dataset")
    if len(arrays) not in (2, 4):
        raise UsageError(f"{name} takes (codes, factors[, codes_test, factors_test])")
    kind = hyper.pop("factor_kind", "auto")
    result = score(*arrays, metrics=[name], seed=seed, params={name: hyper} if hyper else None, floors=False,
                   kind=kind)
    return result["metrics"]
