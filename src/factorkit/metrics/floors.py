"""Measured floors: what each score is on codes that know nothing about the image.

A metric's floor is the same metric, with the same parameters, on the same rows and labels,
computed from seeded Gaussian codes of the run's code shape (``random-codes``). Several
metrics sit well above zero there, and how far depends on the data and the number of codes
(modularity: 0.65 on shapes2d, 0.81 on faces), so a printed constant would mislead.

* code metrics (mig, sap, dci, modularity, attr-projection, nn-map): ``run`` of the registry
  entry on a copy of the evaluation context whose train/test codes are Gaussian;
* interventional metrics (higgins, factorvae): the metric with a representation that returns
  fresh Gaussian codes for every image — the images themselves are never rendered, since the
  codes ignore them;
* metrics with no random-code floor: edit-success reads the majority-class rate of the
  attribute on the test split (``majority``; for classes, the class's own rate); counterfactual's edit scores read the plain
  reconstruction scored the same way (``reconstruction``); image scores have none.

Random-code floors are cached under ``$FACTORKIT_CACHE/floors`` (default
``~/.cache/factorkit/floors``), keyed by dataset, a hash of the labels of the rows used, the
code shape, the metric, its parameters and the seed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from ..files import atomic_write_text, user_cache_dir
from . import editing as E

VERSION = 1
_SALT = 0xF1004  # the Gaussian codes' stream is independent of every other seeded draw


def random_codes(shape: tuple[int, ...], seed: int, stream: int = 0) -> np.ndarray:
    """Seeded standard-normal codes (float64) of ``shape``."""
    return np.random.default_rng([seed, _SALT, stream]).standard_normal(shape)


def scores(name: str, value: dict, prefixed: bool) -> dict[str, float]:
    """The numbers of a metric's result under the keys ``metrics.json`` files them by."""
    return {f"{name}.{k}" if prefixed else k: float(v) for k, v in value.items()
            if not k.startswith("_") and isinstance(v, (int, float)) and not isinstance(v, bool)}


def array_hash(*arrays: np.ndarray) -> str:
    """A short content hash of arrays (dtype, shape and bytes): floor cache keys, the InfoMEC memo."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()[:16]


def _cached(ident: dict, compute: Callable[[], dict[str, float]], cache: bool) -> dict[str, float]:
    text = json.dumps({"v": VERSION, **ident}, sort_keys=True, default=str)
    key = hashlib.sha256(text.encode()).hexdigest()[:20]
    path = user_cache_dir("floors") / f"{ident['metric']}-{key}.json"
    if cache and path.is_file():
        try:
            return {k: float(v) for k, v in json.loads(path.read_text())["floors"].items()}
        except (ValueError, KeyError, TypeError, AttributeError):
            pass  # a damaged cache entry is recomputed and rewritten
    value = compute()
    if cache:
        atomic_write_text(path, json.dumps({"ident": json.loads(text), "floors": value}, indent=1))
    return value


class _RandomCodes:
    """The evaluation context with Gaussian codes in place of the model's; what the metric
    writes besides its result (``reference``) goes nowhere."""

    def __init__(self, ctx) -> None:
        self._ctx = ctx
        seed = ctx.settings.seed
        self.c_tr = random_codes(ctx.c_tr.shape, seed, 0)
        self.c_te = random_codes(ctx.c_te.shape, seed, 1)
        self.reference: dict[str, Any] = {}

    def __getattr__(self, name: str):
        return getattr(self._ctx, name)


class _NoImages:
    """An intervention sampler that draws nothing: random codes do not look at the images."""

    def __init__(self, num_factors: int) -> None:
        self.num_factors = num_factors

    def pair_batch(self, k, batch, rng):
        return torch.zeros(batch, 1), torch.zeros(batch, 1)

    def fixed_batch(self, k, batch, rng):
        return torch.zeros(batch, 1)

    def random_batch(self, batch, rng):
        return torch.zeros(batch, 1)


def _ident(ctx, spec, params) -> dict:
    options = getattr(ctx.dataset, "options", None)
    return {"metric": spec.name, "params": params, "seed": ctx.settings.seed, "data": ctx.info.name,
            "options": getattr(options, "__dict__", options)}


def random_code_floor(ctx, spec, params: dict, cache: bool = True) -> dict[str, float]:
    """The registry metric ``spec`` on Gaussian codes of the run's code shape, same rows."""
    if spec.group == "interventional":
        return _interventional_floor(ctx, spec, params, cache)
    chunks = ctx.representation_chunks() if spec.name == "nn-map" else None
    ident = {**_ident(ctx, spec, params), "shape": [list(ctx.c_tr.shape), list(ctx.c_te.shape)],
             "labels": array_hash(ctx.f_tr, ctx.f_te, ctx.a_tr, ctx.a_te),
             "chunks": {k: [s.start, s.stop] for k, s in chunks.items()} if chunks else None}
    # the Gaussian codes are drawn only when the cache has no entry
    return _cached(ident, lambda: scores(spec.name, spec.run(_RandomCodes(ctx), params), spec.prefixed), cache)


def _interventional_floor(ctx, spec, params: dict, cache: bool) -> dict[str, float]:
    from . import factors as F

    info = ctx.info
    dim = int(F.as_array(ctx.model.representation(ctx.dataset.get_batch(np.arange(1))["image"])).shape[1])
    num_factors = len(info.factors) if info.has_generator else len(info.attributes)
    gen = np.random.default_rng([ctx.settings.seed, _SALT, 2])
    fn = F.higgins if spec.name == "higgins" else F.factorvae

    def compute():
        value = fn(None, lambda x: gen.standard_normal((len(x), dim)), sampler=_NoImages(num_factors),
                   seed=ctx.settings.seed, **params)
        return scores(spec.name, value, spec.prefixed)

    return _cached({**_ident(ctx, spec, params), "dim": dim, "num_factors": num_factors}, compute, cache)


def majority_rate(attributes: np.ndarray) -> np.ndarray:
    """Per attribute column, the share of the more frequent of its two values."""
    mean = np.asarray(attributes, dtype=np.float64).mean(0)
    return np.maximum(mean, 1 - mean)


def edit_floors(ctx, spec, results: dict[str, float]) -> tuple[dict[str, float], str]:
    """Floors of the per-attribute edit metrics (no random-code floor is defined for an edit)."""
    out: dict[str, float] = {}
    if spec.name == "counterfactual":
        for key in results:
            if key.startswith("counterfactual.") and key.endswith("_edit"):
                base = key[: -len("_edit")] + "_reconstruction"
                if base in results:
                    out[key] = results[base]
        return out, "reconstruction"
    if spec.name == "pair-swap":  # each child's score beside the plain reconstruction's
        for key in results:
            if key.startswith("pair-swap.") and key.endswith((".mse", ".psnr", ".identity")):
                base = key + "_reconstruction"
                if base in results:
                    out[key] = results[base]
        return out, "reconstruction"
    if spec.name == "identity-retention":
        factors = ctx.dataset.factor_array()
        names = [f.name for f in ctx.info.factors]
        for a in ctx.attributes():
            key = f"identity-retention.{a}.edit"
            if key in results:
                keep = [j for j, f in enumerate(names) if f != ctx.info.attributes[ctx.info.attribute_index(a)]]
                out[key] = E.chance_agreement(factors[:, keep])
        return out, "chance"
    attrs = ctx.dataset.attribute_array()
    # binary: the majority-class rate; classes (an edit makes an image of another class this one):
    # the rate of the class itself, what naming a class at random by its frequency gets
    rates = attrs.mean(0) if ctx.info.attribute_kind == "onehot" else majority_rate(attrs)
    for a in ctx.attributes():
        key = f"{spec.name}.{a}.attr"
        if key in results:
            out[key] = float(rates[ctx.info.attribute_index(a)])
    return out, "majority"
