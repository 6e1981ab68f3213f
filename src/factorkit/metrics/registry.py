"""Every metric ``factorkit evaluate`` knows: its name, what it needs, its hyper-parameters with
their defaults, how its floor is obtained, and how it runs.

``evaluate`` (which metrics to run and in what order), the applicability check (why a metric
does not apply), ``--param NAME.KEY=VALUE`` (which keys exist, of which type) and the
``factorkit metrics`` table all read :data:`METRICS`, and so do ``fk.metrics.compute`` and
``factorkit score`` on plain arrays (:mod:`factorkit.metrics.arrays`: the metrics declared
``arrays``, on the factor kinds each declares).

A metric's ``run(ctx, params)`` returns its values: keys starting with ``_`` are details (lists,
matrices), other numbers are scores. ``ctx`` is the evaluation context of ``evaluate.py``
(model, datasets, settings, the encoded rows). Per-attribute metrics record one entry per
attribute through ``ctx.record``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import numpy as np

from ..config import Range, check_value, parse_value
from ..errors import UsageError
from . import attributes as A
from . import downstream_task as DS
from . import editing as E
from . import factors as F
from . import generation as GEN
from . import images as I
from . import information as INFO
from . import robustness as IRS
from . import unsupervised_scores as U
from .floors import array_hash

# --- what a metric can need -------------------------------------------------------------------------

# need → (test on (model, info), the reason given when it fails)
NEEDS: dict[str, tuple[Callable[[Any, Any], bool], str]] = {
    "factors": (lambda model, info: bool(info.factors), "the dataset has no ground-truth factors"),
    "sampling": (lambda model, info: bool(info.factors) and (info.has_generator or bool(info.attributes)),
                 "the dataset cannot draw images for chosen factor values"),
    "attributes": (lambda model, info: bool(info.attributes), "the dataset has no attributes"),
    "labels": (lambda model, info: bool(info.factors) or bool(info.attributes),
               "the dataset has neither ground-truth factors nor attributes"),
    "reconstruct": (lambda model, info: model.supports("reconstruct"), "the model does not reconstruct images"),
    "binary-attributes": (lambda model, info: bool(info.attributes) and info.attribute_kind == "binary",
                          "its attributes are classes (one-hot), not binary attributes to set to an intensity"),
    "edit": (lambda model, info: model.supports("edit"), None),  # reason names the model's operations
    "swap": (lambda model, info: model.supports("swap"), None),
    "sample": (lambda model, info: model.supports("sample"), None),
    "pairs": (lambda model, info: callable(getattr(model, "crossbreed", None)),
              "the model does not breed attribute pairs (DNA-GAN's annihilate-and-swap)"),
    "counterfactual": (lambda model, info: bool(info.has_counterfactual),
                       "the dataset has no counterfactual renders (only faces does)"),
}

FLOORS = {
    "random-codes": "measured: the same metric and parameters on seeded Gaussian codes of the run's code shape, "
                    "same rows (cached per dataset, rows, metric, parameters)",
    "majority": "the majority-class rate of the attribute on the test split",
    "reconstruction": "the unedited reconstruction scored the same way",
    "chance": "how often unrelated images agree on the other factors (mean Σ p² over factors, test split)",
    "none": "no floor: an absolute image score",
}


@dataclass(frozen=True)
class MetricSpec:
    name: str
    group: str  # factors | interventional | attributes | images | editing
    needs: tuple[str, ...]
    run: Callable[[Any, dict[str, Any]], dict] | None  # None: the image group runs together
    params: Mapping[str, Any] = field(default_factory=dict)  # --param keys and their defaults
    floor: str = "none"  # a key of FLOORS
    default: bool = True  # run by `factorkit evaluate` without --metrics
    uses_codes: bool = False  # needs the encoded train/test rows
    per_attribute: bool = False  # one entry per attribute (edit metrics)
    prefixed: bool = True  # scores stored as "NAME.KEY" (factor metrics name their own keys)
    description: str = ""
    limits: Mapping[str, Any] = field(default_factory=dict)  # key → Range, or a tuple of the allowed values
    arrays: bool = False  # runs on a plain (codes, factors) table: fk.metrics.compute, `factorkit score`
    factor_kinds: tuple[str, ...] = ("discrete",)  # "continuous" where the definition allows real factors
    test_rows: bool = True  # reads held-out rows (False: the training rows only, all rows on a plain table)
    fast: str = ""  # what --fast changes ("" = nothing: it has no fast mode)

    def applies(self, model, info) -> str | None:
        """None if the metric applies, else why not."""
        for need in self.needs:
            test, reason = NEEDS[need]
            if not test(model, info):
                return reason or f"the model cannot {need} (it supports {', '.join(sorted(model.operations))})"
        return None


# --- the runners ------------------------------------------------------------------------------------


def _mig(ctx, p):
    return F.mig(ctx.c_tr, ctx.f_tr, continuous=ctx.continuous, **p)


def _sap(ctx, p):
    p = {**p, "continuous": p["continuous"] or ctx.continuous}  # real factors: the R² branch
    with ctx.bar("sap", ctx.c_tr.shape[1]) as bar:
        return F.sap(ctx.c_tr, ctx.f_tr, ctx.c_te, ctx.f_te, seed=ctx.settings.seed, progress=bar, **p)


def _dci(ctx, p):
    p = dict(p)
    if p["backend"] == "auto":  # vectorised, or the documented fast mode with --fast; regressors for real factors
        p["backend"] = "vectorised" if ctx.continuous or not ctx.settings.fast else "fast"
    with ctx.bar("dci", ctx.f_tr.shape[1]) as bar:
        return F.dci(ctx.c_tr, ctx.f_tr, ctx.c_te, ctx.f_te, seed=ctx.settings.seed, continuous=ctx.continuous,
                     progress=bar, **p)


def _modularity(ctx, p):
    with ctx.bar("modularity", ctx.f_tr.shape[1]) as bar:
        return F.modularity(ctx.c_tr, ctx.f_tr, ctx.c_te, ctx.f_te, progress=bar, **p)


def _irs(ctx, p):
    return IRS.irs(ctx.c_tr, ctx.f_tr, **p)


def _unsupervised(ctx, p):
    return U.unsupervised(ctx.c_tr, **p)


def _med(ctx, p):
    with ctx.bar("med", ctx.f_tr.shape[1]) as bar:
        return INFO.med(ctx.c_tr, ctx.f_tr, ctx.c_te, ctx.f_te, progress=bar, **p)


def _infomec(ctx, p) -> dict:
    """InfoM and InfoC share one NMI matrix: computed once per (codes, labels, parameters)."""
    p = dict(p)
    if p["estimator"] == "auto":
        p["estimator"] = "histogram" if ctx.settings.fast else "knn"
    key = ("infomec", array_hash(ctx.c_tr, ctx.f_tr), tuple(sorted(p.items())), ctx.settings.seed)

    def compute():
        with ctx.bar("infomec", ctx.f_tr.shape[1]) as bar:
            return INFO.infomec(ctx.c_tr, ctx.f_tr, seed=ctx.settings.seed, progress=bar, **p)
    return ctx.memo(key, compute)


def _infom(ctx, p):
    out = _infomec(ctx, p)
    return {"infom": out["infom"], "infom.num_active_dims": out["num_active_dims"], "_nmi": out["_nmi"]}


def _infoc(ctx, p):
    out = _infomec(ctx, p)
    return {"infoc": out["infoc"], "infoc.num_active_dims": out["num_active_dims"]}


def _infoe(ctx, p):
    with ctx.bar("infoe", ctx.f_tr.shape[1]) as bar:
        return INFO.infoe(ctx.c_tr, ctx.f_tr, continuous=ctx.continuous, progress=bar)


def _downstream(ctx, p):
    sizes = tuple(int(n) for n in p["sizes"])
    predictors = DS.PREDICTORS if p["predictors"] == "both" else (p["predictors"],)
    with ctx.bar("downstream", DS.total_steps(sizes, predictors, ctx.f_tr.shape[1], len(ctx.f_tr))) as bar:
        return DS.downstream(ctx.c_tr, ctx.f_tr, ctx.c_te, ctx.f_te, sizes=sizes, predictors=predictors,
                             seed=ctx.settings.seed, fast=ctx.settings.fast, progress=bar)



def _interventional(fn):
    def run(ctx, p):
        total = p["num_train"] + p["num_eval"]
        with ctx.bar(fn.__name__, total) as bar:
            return fn(ctx.dataset, ctx.model.representation, progress=bar, seed=ctx.settings.seed, **p)
    return run


def _attr_projection(ctx, p):
    return A.attr_projection(ctx.c_tr, ctx.a_tr, ctx.c_te, ctx.a_te, names=ctx.info.attributes, **p)


def _nn_map(ctx, p):
    info = ctx.info
    if info.attributes and not attrs_are_factors(info):
        labels = np.concatenate([ctx.f_te, ctx.a_te.astype(np.int64)], 1)
    else:
        labels = ctx.f_te
    names = [f.name for f in info.factors] + ([] if attrs_are_factors(info) else list(info.attributes))
    chunks = ctx.representation_chunks()
    ctx.reference["nn-map.random"] = positive_rate(labels)
    return A.nn_map(ctx.c_te, labels, chunks=chunks, names=names, seed=ctx.settings.seed, **p)


def _edit_success(ctx, p):
    clf, report = ctx.classifier()
    for a in ctx.attributes():
        ctx.record(f"edit-success.{a}", lambda a=a: E.edit_success(ctx.model, ctx.dataset, a, clf, report,
                                                                    max_images=ctx.settings.image_rows,
                                                                    seed=ctx.settings.seed, **p))


def _identity_retention(ctx, p):
    judge, report = ctx.classifier()
    for a in ctx.attributes():
        ctx.record(f"identity-retention.{a}", lambda a=a: E.identity_retention(ctx.model, ctx.dataset, a, judge,
                                                                            max_images=ctx.settings.image_rows,
                                                                            seed=ctx.settings.seed, **p))


def _swap_fidelity(ctx, p):
    judge, _ = ctx.classifier()
    return E.swap_fidelity(ctx.model, ctx.dataset, judge, seed=ctx.settings.seed, **p)


def _pair_swap(ctx, p):
    judge, _ = ctx.classifier()
    for a in ctx.attributes():
        ctx.record(f"pair-swap.{a}", lambda a=a: E.pair_swap(ctx.model, ctx.dataset, a, judge,
                                                              seed=ctx.settings.seed, **p))


def _edit_intensity(ctx, p):
    for a in ctx.attributes():
        ctx.record(f"edit-intensity.{a}", lambda a=a: E.edit_intensity(ctx.model, ctx.train_dataset, ctx.dataset, a,
                                                                        seed=ctx.settings.seed, **p))


def _counterfactual(ctx, p):
    attrs = ctx.attributes()
    for a in attrs:
        ctx.record(f"counterfactual.{a}", lambda a=a: E.counterfactual(ctx.model, ctx.dataset, a,
                                                                        max_images=ctx.settings.image_rows,
                                                                        seed=ctx.settings.seed, **p))
    gains = [ctx.results[f"counterfactual.{a}.gain"] for a in attrs if f"counterfactual.{a}.gain" in ctx.results]
    if gains:
        ctx.results["counterfactual.gain"] = float(np.mean(gains))


def _judge_fd(ctx, p):
    judge, _ = ctx.classifier()
    return GEN.judge_fd(ctx.model, ctx.dataset, judge, seed=ctx.settings.seed, **p)


def attrs_are_factors(info) -> bool:
    """True where every attribute is also a factor (shapes2d): nn-map then scores the factors alone."""
    names = {f.name for f in info.factors}
    return all(a in names for a in info.attributes)


# mean over label columns of Σ_v p_v²: the precision of a random ranking (nn-map's chance level)
positive_rate = E.chance_agreement


# --- the registry, in the order evaluate runs them ---------------------------------------------------

_INTERVENTION = {"num_train": 10000, "num_eval": 5000, "batch_size": 64}
_AT_LEAST_1, _AT_LEAST_2 = Range(min=1), Range(min=2)
_INTERVENTION_LIMITS = {"num_train": _AT_LEAST_2, "num_eval": _AT_LEAST_1, "batch_size": _AT_LEAST_2}
_BOTH = ("discrete", "continuous")
_INFOMEC = {"estimator": "auto", "n_neighbors": 10, "num_bins": 20}
_INFOMEC_LIMITS = {"estimator": ("auto", *INFO.ESTIMATORS), "n_neighbors": _AT_LEAST_1, "num_bins": _AT_LEAST_2}
_INFOMEC_FAST = "the 20-bin histogram MI estimator instead of the kNN one (estimator=auto)"

METRICS: dict[str, MetricSpec] = {m.name: m for m in (
    MetricSpec("mig", "factors", ("factors",), _mig, {"num_bins": 20}, "random-codes",
               limits={"num_bins": _AT_LEAST_2}, uses_codes=True, prefixed=False, arrays=True,
               factor_kinds=_BOTH, test_rows=False,
               description="mutual information gap (Chen et al. 2018); continuous factors: binned like the codes "
                           "(num_bins equal-width bins), plug-in MI and entropy"),
    MetricSpec("sap", "factors", ("factors",), _sap, {"continuous": False}, "random-codes", uses_codes=True,
               prefixed=False, arrays=True, factor_kinds=_BOTH,
               description="separated attribute predictability (Kumar et al. 2018); continuous factors (or "
                           "sap.continuous=true): the R² branch"),
    MetricSpec("dci", "factors", ("factors",), _dci, {"backend": "auto", "bins": 256}, "random-codes",
               limits={"backend": ("auto", "vectorised", "fast", "sklearn"), "bins": _AT_LEAST_2}, uses_codes=True,
               prefixed=False, arrays=True, factor_kinds=_BOTH, fast="boosted trees on 256 quantile bins per code",
               description="disentanglement, completeness, informativeness (Eastwood & Williams 2018); "
                           "backend auto (vectorised; fast with --fast) | vectorised | fast | sklearn; "
                           "continuous factors: GradientBoostingRegressor, informativeness as R²"),
    MetricSpec("modularity", "factors", ("factors",), _modularity, {"num_bins": 20}, "random-codes",
               limits={"num_bins": _AT_LEAST_2}, uses_codes=True,
               prefixed=False, arrays=True,
               description="modularity and explicitness (Ridgeway & Mozer 2018)"),
    MetricSpec("irs", "factors", ("factors",), _irs, {"diff_quantile": 0.99, "num_bins": 20}, "random-codes",
               limits={"diff_quantile": Range(min=0, max=1), "num_bins": _AT_LEAST_2}, uses_codes=True,
               prefixed=False, arrays=True, factor_kinds=_BOTH, test_rows=False,
               description="interventional robustness score (Suter et al. 2019); num_active_dims is a count"),
    MetricSpec("unsupervised", "codes", (), _unsupervised, {"num_bins": 20}, "random-codes",
               limits={"num_bins": _AT_LEAST_2}, uses_codes=True, arrays=True, factor_kinds=_BOTH, test_rows=False,
               description="Gaussian total correlation, Gaussian Wasserstein correlation (and normalised), mean "
                           "pairwise MI of the codes: no labels needed"),
    MetricSpec("med", "factors", ("factors",), _med, {"num_bins": 20, "topk": 1}, "random-codes",
               limits={"num_bins": _AT_LEAST_2, "topk": Range(min=0)}, uses_codes=True, arrays=True,
               description="MED (Cao et al. 2022): DCI's D and C on the MI matrix, top-k MED, logistic "
                           "informativeness; needs no generator (CelebA's attributes are its factors)"),
    MetricSpec("infom", "factors", ("factors",), _infom, dict(_INFOMEC), "random-codes", limits=_INFOMEC_LIMITS,
               uses_codes=True, prefixed=False, arrays=True, test_rows=False, fast=_INFOMEC_FAST,
               description="InfoM, modularity of InfoMEC (Hsu et al. 2023): normalised MI, kNN estimator"),
    MetricSpec("infoc", "factors", ("factors",), _infoc, dict(_INFOMEC), "random-codes", limits=_INFOMEC_LIMITS,
               uses_codes=True, prefixed=False, arrays=True, test_rows=False, fast=_INFOMEC_FAST,
               description="InfoC, compactness of InfoMEC (Hsu et al. 2023), from the same NMI matrix as InfoM"),
    MetricSpec("infoe", "factors", ("factors",), _infoe, {}, "random-codes", uses_codes=True, prefixed=False,
               arrays=True, factor_kinds=_BOTH, test_rows=False,
               description="InfoE, explicitness of InfoMEC (Hsu et al. 2023): normalised predictive information of "
                           "an unpenalised logistic read-out (R² of a linear one for continuous factors)"),
    MetricSpec("downstream", "factors", ("factors",), _downstream,
               {"sizes": (10.0, 100.0, 1000.0, 10000.0), "predictors": "both"}, "random-codes",
               limits={"predictors": ("both", *DS.PREDICTORS), "sizes": Range(min=5)}, uses_codes=True,
               default=False, arrays=True,
               fast="the gbt predictor on 256 quantile bins per code",
               description="downstream-task accuracy (disentanglement_lib): LogisticRegressionCV and boosted trees "
                           "trained on 10 / 100 / 1,000 / 10,000 codes"),
    MetricSpec("higgins", "interventional", ("sampling",), _interventional(F.higgins), dict(_INTERVENTION),
               "random-codes", limits=_INTERVENTION_LIMITS, default=False, prefixed=False,
               description="β-VAE metric (Higgins et al. 2017)"),
    MetricSpec("factorvae", "interventional", ("sampling",), _interventional(F.factorvae),
               {**_INTERVENTION, "num_variance_estimate": 10000, "threshold": 0.05}, "random-codes",
               limits={**_INTERVENTION_LIMITS, "num_variance_estimate": _AT_LEAST_2, "threshold": Range(min=0)}, default=False,
               prefixed=False, description="FactorVAE metric (Kim & Mnih 2018)"),
    MetricSpec("attr-projection", "attributes", ("attributes",), _attr_projection, {"normalize": True}, "random-codes",
               uses_codes=True, description="attribute read-out by projection (Kumar et al. 2018)"),
    MetricSpec("attr-linear", "attributes", ("attributes",), _attr_projection, {"normalize": True}, "random-codes",
               uses_codes=True, default=False, description="Hu et al. eq. 5 (the projection protocol)"),
    MetricSpec("nn-map", "attributes", ("labels",), _nn_map, {"num_queries": 2000, "query_batch": 256}, "random-codes",
               limits={"num_queries": _AT_LEAST_1, "query_batch": _AT_LEAST_1},
               uses_codes=True, description="nearest-neighbour retrieval mAP per chunk (Hu et al. 2018)"),
    *(MetricSpec(name, "images", ("reconstruct",), None, {}, "none", description="reconstruction, test split")
      for name in I.IMAGE_METRICS),
    MetricSpec("edit-success", "editing", ("edit", "attributes"), _edit_success, {}, "majority",
               per_attribute=True, description="edited attribute read by the independent classifier"),
    MetricSpec("identity-retention", "editing", ("edit", "attributes", "factors"), _identity_retention, {}, "chance",
               per_attribute=True, description="the judge reads every other factor of an edit unchanged (issue 16)"),
    MetricSpec("swap-fidelity", "editing", ("swap", "factors"), _swap_fidelity, {"max_pairs": 500, "threshold": 0.8}, "none",
               limits={"max_pairs": Range(min=1), "threshold": Range(min=0, max=1)},
               description="which factors move with each swapped piece, read by the judge (issue 16)"),
    MetricSpec("pair-swap", "editing", ("pairs", "attributes", "factors", "counterfactual"), _pair_swap,
               {"max_pairs": 500}, "reconstruction", limits={"max_pairs": Range(min=1)}, per_attribute=True,
               description="DNA-GAN's crossbreeds B2 (gains A's piece) and A2 (annihilated) vs the true "
                           "counterfactuals, with the judge's success and identity (issue 18)"),
    MetricSpec("edit-intensity", "editing", ("edit", "binary-attributes"), _edit_intensity,
               {"values": (0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0), "repeats": 5, "max_train": 4000,
                "max_test": 1000, "C": 1e-4}, "majority",
               limits={"repeats": _AT_LEAST_1, "max_train": _AT_LEAST_2, "max_test": _AT_LEAST_1,
                       "C": Range(min=0, min_open=True)}, default=False, per_attribute=True,
               description="mddAE protocol: pixel-SVM error of edits by intensity"),
    MetricSpec("counterfactual", "editing", ("edit", "attributes", "counterfactual"), _counterfactual, {},
               "reconstruction", per_attribute=True, description="edit vs the true counterfactual render (faces)"),
    MetricSpec("judge-fd", "generation", ("sample", "factors"), _judge_fd, {"num_samples": 2000}, "none",
               limits={"num_samples": _AT_LEAST_2}, default=False, prefixed=False,
               description="Fréchet distance of samples to real images in the judge's features (offline FID "
                           "stand-in); judge-fd.real: two real sets of the same size"),
)}

ALL_METRICS = tuple(METRICS)


def spec(name: str) -> MetricSpec:
    if name not in METRICS:
        raise UsageError(f"unknown metric {name!r}; valid: {', '.join(METRICS)}")
    return METRICS[name]


def applicable(model, info) -> list[str]:
    return [m.name for m in METRICS.values() if m.applies(model, info) is None]


def defaults(model, info) -> list[str]:
    """What ``factorkit evaluate`` runs without --metrics: every applicable metric declared
    ``default`` (not the interventional scores, ≈ 2 million renders each at the study's
    defaults, nor edit-intensity, 5 pixel SVMs per attribute, nor attr-linear, a copy of
    attr-projection under Hu et al.'s name)."""
    return [m.name for m in METRICS.values() if m.default and m.applies(model, info) is None]


def check(model, info, metrics: list[str] | None) -> list[str]:
    """The metrics to run, in registry order; an unknown or inapplicable name is a UsageError saying why."""
    requested = list(metrics) if metrics else defaults(model, info)
    for name in requested:
        why = spec(name).applies(model, info)
        if why is not None:
            raise UsageError(f"metric {name!r} does not apply to model {model.name!r} on {info.name}: {why}; "
                             f"applicable: {', '.join(applicable(model, info))}")
    return [m for m in METRICS if m in requested]


def _param_type(entry: MetricSpec, key: str) -> Any:
    default, limit = entry.params[key], entry.limits.get(key)
    if isinstance(limit, tuple):
        return Literal[limit]
    if isinstance(default, tuple):  # a list of numbers: the limit holds for each one
        return tuple[Annotated[float, limit], ...] if isinstance(limit, Range) else tuple[float, ...]
    tp = type(default)  # bool, int, float or str
    return Annotated[tp, limit] if isinstance(limit, Range) else tp


def resolve_params(overrides: Mapping[str, Mapping[str, Any]] | None) -> dict[str, dict[str, Any]]:
    """Declared defaults with ``overrides`` ({metric: {key: value}}) applied, checked: an unknown
    metric or key names the valid ones; a value of the wrong type names the expected type.
    Strings (from ``--param``) are parsed as the default's type."""
    overrides = overrides or {}
    for name, values in overrides.items():
        entry = spec(name)
        for key in values:
            if key not in entry.params:
                valid = ", ".join(f"{name}.{k}" for k in entry.params) or "(none: it takes no parameters)"
                raise UsageError(f"--param {name}.{key}: unknown key; valid {name} keys: {valid}")
    out: dict[str, dict[str, Any]] = {}
    for name, entry in METRICS.items():
        params = dict(entry.params)
        for key, value in overrides.get(name, {}).items():
            tp = _param_type(entry, key)
            label = f"{name}.{key}"
            try:
                params[key] = parse_value(value, tp, label) if isinstance(value, str) and tp is not str else \
                    check_value(value, tp, label)
            except UsageError as exc:  # the config parser words it for --set
                raise UsageError(str(exc).replace("--set ", "--param ", 1)) from None
        out[name] = params
    return out


def table() -> list[dict[str, Any]]:
    """One row per metric, for ``factorkit metrics``."""
    return [{"name": m.name, "group": m.group, "needs": list(m.needs), "params": dict(m.params), "floor": m.floor,
             "default": m.default, "description": m.description, "arrays": m.arrays,
             "factor_kinds": list(m.factor_kinds), "fast": m.fast} for m in METRICS.values()]
