"""Attribute and retrieval metrics.

* ``attr-projection`` (Kumar et al. 2018, used by UD-GAN) = ``attr-linear`` (Hu et al. 2018,
  eq. 5): one protocol, one implementation (methods.md §6.2).
* ``nn-map`` (Hu et al. 2018, Table 2): nearest-neighbour mean average precision per chunk and
  attribute, best chunk per attribute (methods.md §6.3).

Every accuracy comes with the majority-class accuracy of the same test split beside it.
"""

from __future__ import annotations

import numpy as np
import torch

from .factors import as_array

# --- attr-projection / attr-linear ---------------------------------------------------------------


def hinge_objective(b: np.ndarray, scores: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Σ_i max(0, 1 − c_i (s_i + b)) for each candidate bias in ``b`` (brute force, O(n·|b|))."""
    return np.maximum(0.0, 1.0 - labels[None] * (scores[None] + np.asarray(b)[:, None])).sum(1)


def hinge_bias(scores: np.ndarray, labels: np.ndarray) -> float:
    """The exact minimiser of Σ_i max(0, 1 − c_i (s_i + b)) over b (c_i ∈ {−1, +1}).

    The objective is convex and piecewise linear with breakpoints b = c_i − s_i, so its minimum
    is attained at one of them; all n breakpoints are evaluated in O(n log n) with sorted
    prefix sums: positives contribute Σ_{u_i > b}(u_i − b) with u_i = 1 − s_i, negatives
    Σ_{v_i < b}(b − v_i) with v_i = −1 − s_i.
    """
    s = np.asarray(scores, dtype=np.float64)
    c = np.asarray(labels, dtype=np.float64)
    u = np.sort(1.0 - s[c > 0])
    v = np.sort(-1.0 - s[c < 0])
    cand = np.concatenate([u, v])
    if cand.size == 0:
        return 0.0
    pu = np.concatenate([[0.0], np.cumsum(u)])
    pv = np.concatenate([[0.0], np.cumsum(v)])
    iu = np.searchsorted(u, cand, side="right")  # u[iu:] > b
    iv = np.searchsorted(v, cand, side="left")  # v[:iv] < b
    pos = (pu[-1] - pu[iu]) - cand * (len(u) - iu)
    neg = cand * iv - pv[iv]
    obj = pos + neg
    return float(cand[np.argmin(obj)])


def attr_projection(features, attributes, features_test, attributes_test, names=None,
                    normalize: bool = True) -> dict:
    """Per attribute: w = mean(r | c=+1) − mean(r | c=−1) on the training split, bias = the
    exact hinge minimiser, prediction sign(wᵀr + b) on the test split. ``normalize`` scales
    every coordinate to unit variance with training statistics (Hu et al.)."""
    r, rt = as_array(features, np.float64), as_array(features_test, np.float64)
    a, at = as_array(attributes, np.float64), as_array(attributes_test, np.float64)
    names = list(names) if names is not None else [f"attr{i}" for i in range(a.shape[1])]
    if normalize:
        mean, std = r.mean(0), r.std(0)
        std = np.where(std > 0, std, 1.0)
        r, rt = (r - mean) / std, (rt - mean) / std
    out: dict = {}
    accs, majs = [], []
    for k, name in enumerate(names):
        c, ct = np.where(a[:, k] > 0.5, 1.0, -1.0), np.where(at[:, k] > 0.5, 1.0, -1.0)
        if (c > 0).all() or (c < 0).all():
            continue  # one class only in training: no direction to learn
        w = r[c > 0].mean(0) - r[c < 0].mean(0)
        b = hinge_bias(r @ w, c)
        pred = np.where(rt @ w + b >= 0, 1.0, -1.0)
        acc = float(np.mean(pred == ct))
        majority = float(max(np.mean(ct > 0), np.mean(ct < 0)))
        out[f"{name}"] = acc
        out[f"{name}.majority"] = majority
        accs.append(acc)
        majs.append(majority)
    out["mean"] = float(np.mean(accs)) if accs else float("nan")
    out["majority_mean"] = float(np.mean(majs)) if majs else float("nan")
    return out


# --- nn-map ------------------------------------------------------------------------------------


def average_precision(relevant: torch.Tensor) -> torch.Tensor:
    """AP of each row of a (Q, M) relevance matrix given in ranked order; NaN when a row has no
    relevant item."""
    rel = relevant.double()
    hits = torch.cumsum(rel, 1)
    ranks = torch.arange(1, rel.shape[1] + 1, dtype=torch.float64)
    total = rel.sum(1)
    ap = (hits / ranks * rel).sum(1) / total
    return torch.where(total > 0, ap, torch.full_like(ap, float("nan")))


def nn_map(features, labels, chunks: dict[str, slice] | None = None, names=None,
           num_queries: int | None = None, seed: int = 0, query_batch: int = 256) -> dict:
    """Mean average precision of L2 nearest-neighbour retrieval, for every (chunk, attribute):
    each query ranks all *other* items by distance on the chunk, relevant = same value of the
    attribute, AP over the full ranking, mean over queries (a fixed random subset of
    ``num_queries`` when given). score(a) = max over chunks; ``nn-map`` = mean over attributes.
    Random features score ≈ the positive rate (≈ 1/#classes for balanced classes)."""
    x = torch.as_tensor(as_array(features, np.float64))
    y = torch.as_tensor(as_array(labels)).long()
    n = len(x)
    chunks = chunks or {"all": slice(0, x.shape[1])}
    names = list(names) if names is not None else [f"attr{i}" for i in range(y.shape[1])]
    rng = np.random.default_rng(seed)
    queries = np.sort(rng.choice(n, num_queries, replace=False)) if num_queries and num_queries < n else np.arange(n)
    table = np.zeros((len(chunks), y.shape[1]))
    for ci, sl in enumerate(chunks.values()):
        xc = x[:, sl]
        sums = np.zeros(y.shape[1])
        counts = np.zeros(y.shape[1])
        for q0 in range(0, len(queries), query_batch):
            q = torch.as_tensor(queries[q0 : q0 + query_batch])
            d = torch.cdist(xc[q], xc)
            d[torch.arange(len(q)), q] = float("inf")  # the query itself is not retrieved
            order = torch.argsort(d, dim=1, stable=True)[:, : n - 1]
            for a in range(y.shape[1]):
                rel = y[order, a] == y[q, a][:, None]
                ap = average_precision(rel)
                ok = ~torch.isnan(ap)
                sums[a] += float(ap[ok].sum())
                counts[a] += int(ok.sum())
        table[ci] = sums / np.maximum(counts, 1)
    best = table.max(0)
    out = {name: float(best[a]) for a, name in enumerate(names)}
    out.update({f"{name}.chunk": list(chunks)[int(table[:, a].argmax())] for a, name in enumerate(names)})
    out["mean"] = float(best.mean())
    out["_table"] = table
    out["_chunks"] = list(chunks)
    return out
