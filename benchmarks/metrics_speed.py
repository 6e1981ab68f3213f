"""Speed of the four array metrics (MIG, SAP, DCI, modularity+explicitness) with the metric
study's defaults on an 11,520 × 10 code table (80/20 split, 9,216 train / 2,304 test rows),
for three implementations:

* ``reference`` — disentanglement_lib's formulas written out with scikit-learn
  (``mutual_info_score``, ``LinearSVC``, ``GradientBoostingClassifier()``,
  ``LogisticRegression``), as the reference computes them, seeded;
* ``factorkit`` — ``fk.metrics`` defaults (DCI ``backend="vectorised"``: the same boosted trees,
  vectorised);
* ``factorkit-fast`` — the documented fast mode (DCI ``backend="fast"``: 256 quantile bins per code).

    python benchmarks/metrics_speed.py [--run RUN_DIR] [--skip-reference] [--every | --every-only]

``--every`` also times every metric ``factorkit score`` runs (every registry metric declared
``arrays``: the four above plus IRS, the unsupervised scores, MED, InfoM, InfoC, InfoE and the
downstream task) at its study defaults, in the default mode and with ``--fast``, through
``fk.metrics.score`` on the same table (no floors); ``--every-only`` times just that.

Codes: with ``--run``, a trained model's representation of shapes2d images; otherwise a fixed
synthetic table (true shapes2d factors mixed linearly into 10 codes, plus noise). Targets
(issue "Metrics"): factorkit ≥ 2× faster than the reference with equal scores (DCI within
gradient-boosting noise, ≤ 0.02); fast mode ≥ 10× faster, every score within 0.02.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from factorkit.data import shapes2d as S
from factorkit.metrics import factors as M

# --- the reference formulas (disentanglement_lib, written with scikit-learn) --------------------

def ref_discretize(target, num_bins=20):
    out = np.zeros_like(target, dtype=np.int64)
    for i in range(target.shape[1]):
        out[:, i] = np.digitize(target[:, i], np.histogram(target[:, i], num_bins)[1][:-1])
    return out


def ref_mi(mus, ys):
    from sklearn.metrics import mutual_info_score

    m = np.zeros((mus.shape[1], ys.shape[1]))
    for i in range(mus.shape[1]):
        for j in range(ys.shape[1]):
            m[i, j] = mutual_info_score(ys[:, j], mus[:, i])
    return m


def ref_mig(codes, factors, *_):
    m = ref_mi(ref_discretize(codes), factors)
    h = np.array([ref_mi(factors[:, j : j + 1], factors[:, j : j + 1])[0, 0] for j in range(factors.shape[1])])
    top = np.sort(m, axis=0)[::-1]
    return {"mig": float(np.mean((top[0] - top[1]) / h))}


def ref_sap(codes, factors, codes_t, factors_t):
    from sklearn.svm import LinearSVC

    score = np.zeros((codes.shape[1], factors.shape[1]))
    for i in range(codes.shape[1]):
        for j in range(factors.shape[1]):
            clf = LinearSVC(C=0.01, class_weight="balanced", random_state=0).fit(codes[:, i : i + 1], factors[:, j])
            score[i, j] = np.mean(clf.predict(codes_t[:, i : i + 1]) == factors_t[:, j])
    top = np.sort(score, axis=0)[::-1]
    return {"sap": float(np.mean(top[0] - top[1]))}


def ref_dci(codes, factors, codes_t, factors_t):
    from sklearn.ensemble import GradientBoostingClassifier

    imp = np.zeros((codes.shape[1], factors.shape[1]))
    tr, te = [], []
    for j in range(factors.shape[1]):
        model = GradientBoostingClassifier(random_state=0).fit(codes, factors[:, j])
        imp[:, j] = np.abs(model.feature_importances_)
        tr.append(np.mean(model.predict(codes) == factors[:, j]))
        te.append(np.mean(model.predict(codes_t) == factors_t[:, j]))
    out = ref_dci_from_importance(imp)
    return {"dci.disentanglement": out["disentanglement"], "dci.completeness": out["completeness"],
            "dci.informativeness_train": float(np.mean(tr)), "dci.informativeness_test": float(np.mean(te))}


def ref_modularity(codes, factors, codes_t, factors_t):
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.preprocessing import MultiLabelBinarizer

    mi = ref_mi(ref_discretize(codes), factors)
    mean, std = codes.mean(0), codes.std(0)
    ztr, zte = (codes - mean) / std, (codes_t - mean) / std
    tr, te = [], []
    for j in range(factors.shape[1]):
        clf = LogisticRegression().fit(ztr, factors[:, j])
        mlb = MultiLabelBinarizer()
        tr.append(roc_auc_score(mlb.fit_transform(factors[:, j : j + 1]), clf.predict_proba(ztr)))
        te.append(roc_auc_score(mlb.fit_transform(factors_t[:, j : j + 1]), clf.predict_proba(zte)))
    return {"modularity": ref_modularity_from_mi(mi), "explicitness_train": float(np.mean(tr)),
            "explicitness_test": float(np.mean(te))}


def ref_dci_from_importance(imp):
    """disentanglement_lib's dci.disentanglement / completeness, written from its formulas with
    scipy's entropy (independent of factorkit's helper)."""
    from scipy.stats import entropy

    d, k = imp.shape
    per_code = 1.0 - entropy(imp.T + 1e-11, base=k)
    code_w = imp.sum(1) / imp.sum()
    per_factor = 1.0 - entropy(imp + 1e-11, base=d)
    factor_w = imp.sum(0) / imp.sum()
    return {"disentanglement": float(np.sum(per_code * code_w)), "completeness": float(np.sum(per_factor * factor_w))}


def ref_modularity_from_mi(mi):
    """disentanglement_lib's modularity: per code 1 − (Σ mi² − max mi²) / (max mi² · (K − 1))."""
    sq = mi**2
    top = sq.max(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        score = 1.0 - (sq.sum(1) - top) / (top * (mi.shape[1] - 1))
    return float(np.mean(np.where(top == 0, 0.0, score)))


REFERENCE = {"mig": ref_mig, "sap": ref_sap, "dci": ref_dci, "modularity": ref_modularity}


def ours(fast: bool):
    return {
        "mig": lambda c, f, ct, ft: M.mig(c, f),
        "sap": lambda c, f, ct, ft: M.sap(c, f, ct, ft),
        "dci": lambda c, f, ct, ft: M.dci(c, f, ct, ft, backend="fast" if fast else "vectorised"),
        "modularity": lambda c, f, ct, ft: M.modularity(c, f, ct, ft),
    }


def table(run: str | None, n: int = 11520, seed: int = 0):
    rng = np.random.default_rng(seed)
    factors = S.Shapes2D().sample_factors(n, rng)
    if run:
        import torch

        import factorkit as fk

        model = fk.load(run)
        imgs = S.render(factors)
        with torch.no_grad():
            codes = np.concatenate([model.representation(imgs[i : i + 512]).numpy() for i in range(0, n, 512)])
    else:
        scaled = factors / (np.array(S.FACTOR_SIZES) - 1)
        mix = rng.normal(size=(5, 10)) * 0.3 + np.eye(5, 10) * 2
        codes = scaled @ mix + 0.05 * rng.normal(size=(n, 10))
    cut = int(0.8 * n)
    return codes[:cut], factors[:cut], codes[cut:], factors[cut:]


def run_impl(impls, arrays):
    scores, seconds = {}, {}
    for name, fn in impls.items():
        t = time.perf_counter()
        out = fn(*arrays)
        seconds[name] = round(time.perf_counter() - t, 2)
        scores.update({k: round(float(v), 4) for k, v in out.items() if not k.startswith("_")})
        print(f"  {name:10s} {seconds[name]:8.2f} s  {({k: scores[k] for k in out if not k.startswith('_')})}", flush=True)
    return scores, seconds


def every_metric(arrays, fast: bool) -> dict:
    """Seconds and scores of each array metric of the registry, one at a time, no floors."""
    from factorkit.metrics import arrays as AR

    out = {}
    for name in AR.array_metrics():
        t = time.perf_counter()
        scores = AR.score(*arrays, metrics=[name], fast=fast, floors=False)["metrics"]
        seconds = round(time.perf_counter() - t, 2)
        out[name] = {"seconds": seconds, "scores": {k: round(v, 4) for k, v in scores.items()}}
        print(f"  {name:12s} {seconds:8.2f} s  {out[name]['scores']}", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--run", help="a run directory whose model encodes the shapes2d table")
    ap.add_argument("--skip-reference", action="store_true")
    ap.add_argument("--every", action="store_true", help="also time every array metric (default and --fast)")
    ap.add_argument("--every-only", action="store_true", help="time only every array metric")
    args = ap.parse_args()
    arrays = table(args.run)
    print(f"code table: {arrays[0].shape[0]} train + {arrays[2].shape[0]} test rows x {arrays[0].shape[1]} codes")
    if args.every or args.every_only:
        every = {}
        for label, fast in (("default", False), ("fast", True)):
            print(f"every array metric, {label} mode", flush=True)
            every[label] = every_metric(arrays, fast)
        print(json.dumps({k: {m: v["seconds"] for m, v in r.items()} for k, r in every.items()}, indent=1))
        if args.every_only:
            return
    results = {}
    variants = (("factorkit", ours(False)), ("factorkit-fast", ours(True)))
    for label, impls in variants + (() if args.skip_reference else (("reference", REFERENCE),)):
        print(label, flush=True)
        scores, seconds = run_impl(impls, arrays)
        results[label] = {"scores": scores, "seconds": seconds, "total_s": round(sum(seconds.values()), 2)}
    if "reference" in results:
        ref = results["reference"]
        for label in ("factorkit", "factorkit-fast"):
            r = results[label]
            r["speedup"] = round(ref["total_s"] / r["total_s"], 2)
            r["max_abs_score_diff"] = round(max(abs(r["scores"][k] - ref["scores"][k]) for k in ref["scores"]), 4)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
