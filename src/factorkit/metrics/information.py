"""Information-based scores: InfoMEC (Hsu et al. 2023) and MED (Cao et al. 2022), pure cores.

**InfoMEC** — Hsu, Dorrell, Whittington, Wu, Finn, "Disentanglement via Latent Quantization"
(NeurIPS 2023), as their ``infomec.py`` computes it:

* NMI (factors × codes): ``NMI[i, j] = I(s_i; z_j) / H(s_i)``, factors label-encoded, H from the
  sample. Estimators of I (``estimator``):
  ``knn`` (the paper's, for continuous codes) — each code standardised, scikit-learn's
  ``mutual_info_classif(z_j, s_i, n_neighbors=10)`` (Ross 2014 kNN estimator), seeded;
  ``discrete`` (the paper's for quantised codes) — ``mutual_info_score`` on the code values;
  ``histogram`` (factorkit's fast mode) — the 20-bin equal-width discretizer of MIG.
* Active codes: range > max range / 20 (``knn``, ``histogram``), range > 0 (``discrete``).
* InfoM = (mean over active codes of max_i NMI / Σ_i NMI − 1/K) / (1 − 1/K), K factors;
  InfoC = (mean over factors of max_j NMI / Σ_j NMI − 1/L) / (1 − 1/L), L active codes.
  A code (or factor) whose NMIs are all 0 counts as spread evenly (its ratio is 1/K, or 1/L)
  where the authors' code divides 0 by 0; with K = 1 (L = 1) InfoM (InfoC) is undefined: NaN.
* InfoE = mean over factors of (H_null − H_pred) / H_null: H_pred is the log-loss, on the
  training rows, of an unpenalised, class-balanced multinomial logistic regression (lbfgs, 100
  iterations) on the standardised codes; H_null the same fit on all-zero inputs. For continuous
  factors InfoE is the R² of a linear regression on the standardised codes, the authors'
  regression form of the same quantity.

**MED** — Cao et al., "An Empirical Study on Disentanglement of Negative-free Contrastive
Learning" (NeurIPS 2022), ``med.py``: DCI's disentanglement and completeness formulas applied to
an importance matrix of mutual information instead of boosted-tree importances — the codes
discretised as for MIG (20 equal-width bins), the (codes × factors) MI matrix, each column
divided by its sum. Informativeness: per factor a ``LogisticRegression()`` on the codes
standardised with the training mean and std, accuracy on train and test rows. Top-k MED keeps,
per factor, the k codes with the highest per-code disentanglement among the codes whose
arg-max factor it is, and applies D and C to those rows. A factor with no information in any
code (a zero column) keeps a zero column where the reference divides 0 by 0.
"""

from __future__ import annotations

import warnings

import numpy as np

from .factors import (
    _check,
    _entropy,
    as_array,
    dci_from_importance,
    encode_factors,
    entropy_discrete,
    histogram_discretize,
    mi_and_standardised,
    mutual_information,
)

ESTIMATORS = ("knn", "discrete", "histogram")


def _standardise(x: np.ndarray) -> np.ndarray:
    std = x.std(axis=0)
    return (x - x.mean(axis=0)) / np.where(std > 0, std, 1.0)


def nmi_matrix(codes, factors, estimator: str = "knn", n_neighbors: int = 10, num_bins: int = 20, seed: int = 0,
               progress=None) -> np.ndarray:
    """NMI[i, j] = I(factor_i; code_j) / H(factor_i), shape (K, D); constant factors give a zero row."""
    from ..errors import UsageError

    if estimator not in ESTIMATORS:
        raise UsageError(f"InfoMEC estimator {estimator!r}; valid: {', '.join(ESTIMATORS)}")
    codes, factors = as_array(codes, np.float64), encode_factors(factors)[0]
    _check(codes, factors)
    h = entropy_discrete(factors)
    if estimator == "knn":
        from sklearn.feature_selection import mutual_info_classif

        z = _standardise(codes)
        mi = np.zeros((factors.shape[1], codes.shape[1]))
        for i in range(factors.shape[1]):
            if h[i] > 0:
                try:
                    mi[i] = mutual_info_classif(z, factors[:, i], discrete_features=False, n_neighbors=n_neighbors,
                                                random_state=seed)
                except ValueError as exc:  # too few rows per factor value for the neighbour search
                    raise UsageError(f"InfoMEC's kNN estimator cannot run on {len(z)} rows ({exc}); score more rows, "
                                     "or set estimator=histogram") from None
            if progress is not None:
                progress(1)
    else:
        disc = histogram_discretize(codes, num_bins) if estimator == "histogram" else \
            np.stack([np.unique(codes[:, j], return_inverse=True)[1].reshape(-1) for j in range(codes.shape[1])], 1)
        mi = mutual_information(factors, disc)
        if progress is not None:
            progress(factors.shape[1])
    return np.divide(mi, h[:, None], out=np.zeros_like(mi), where=h[:, None] > 0)


def active_codes(codes, estimator: str = "knn") -> np.ndarray:
    codes = as_array(codes, np.float64)
    ranges = codes.max(axis=0) - codes.min(axis=0)
    return ranges > 0 if estimator == "discrete" else ranges > ranges.max() / 20


def _concentration(m: np.ndarray, axis: int) -> np.ndarray:
    """max / sum along ``axis``, 1/n (evenly spread) where the sum is 0."""
    total = m.sum(axis=axis)
    n = m.shape[axis]
    return np.divide(m.max(axis=axis), total, out=np.full(total.shape, 1.0 / n), where=total > 0)


def infom_infoc(nmi: np.ndarray, active: np.ndarray) -> tuple[float, float]:
    """InfoM and InfoC of an NMI matrix (factors × codes) over the ``active`` codes."""
    m = nmi[:, active]
    k, l_ = m.shape
    if l_ == 0:
        return float("nan"), float("nan")
    infom = (np.mean(_concentration(m, 0)) - 1 / k) / (1 - 1 / k) if k > 1 else float("nan")
    infoc = (np.mean(_concentration(m, 1)) - 1 / l_) / (1 - 1 / l_) if l_ > 1 else float("nan")
    return float(infom), float(infoc)


def _log_loss(z: np.ndarray, y: np.ndarray) -> float:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import log_loss

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model = LogisticRegression(C=np.inf, class_weight="balanced", solver="lbfgs", max_iter=100).fit(z, y)
    return float(log_loss(y, model.predict_proba(z), labels=model.classes_))


def infoe(codes, factors, continuous: bool = False, progress=None) -> dict:
    """InfoE: the normalised predictive information of a linear read-out, mean over factors."""
    codes = as_array(codes, np.float64)
    z = _standardise(codes)
    values = []
    if continuous:
        from sklearn.linear_model import LinearRegression

        factors = as_array(factors, np.float64)
        _check(codes, factors)
        for i in range(factors.shape[1]):
            if factors[:, i].var() > 0:
                values.append(float(LinearRegression().fit(z, factors[:, i]).score(z, factors[:, i])))
            if progress is not None:
                progress(1)
    else:
        factors = encode_factors(factors)[0]
        _check(codes, factors)
        null = np.zeros_like(z)
        for i in range(factors.shape[1]):
            y = factors[:, i]
            if len(np.unique(y)) > 1:  # a constant factor has no entropy to explain
                h_null = _log_loss(null, y)
                values.append((h_null - _log_loss(z, y)) / h_null)
            if progress is not None:
                progress(1)
    return {"infoe": float(np.mean(values)) if values else float("nan"), "_per_factor": values}


def infomec(codes, factors, estimator: str = "knn", n_neighbors: int = 10, num_bins: int = 20, seed: int = 0,
            progress=None) -> dict:
    """InfoM and InfoC (the NMI part of InfoMEC); InfoE is :func:`infoe`."""
    nmi = nmi_matrix(codes, factors, estimator, n_neighbors, num_bins, seed, progress)
    active = active_codes(codes, estimator)
    infom, infoc = infom_infoc(nmi, active)
    return {"infom": infom, "infoc": infoc, "num_active_dims": int(active.sum()), "_nmi": nmi}


# --- MED ---------------------------------------------------------------------------------------------


def med_importance(mi: np.ndarray) -> np.ndarray:
    """MI matrix (codes × factors) with each column divided by its sum (zero columns stay zero)."""
    mi = np.asarray(mi, dtype=np.float64)
    total = mi.sum(axis=0, keepdims=True)
    return np.divide(mi, total, out=np.zeros_like(mi), where=total > 0)


def topk_rows(importance: np.ndarray, k: int) -> np.ndarray:
    """Top-k MED's selection: codes in decreasing per-code disentanglement, each offered to its
    arg-max factor, which keeps at most ``k``; the kept rows, sorted."""
    d, nf = importance.shape
    per_code = 1.0 - _entropy(importance + 1e-11, nf, axis=1) if nf > 1 else np.ones(d)
    owner = np.argmax(importance, axis=1)
    kept: list[list[int]] = [[] for _ in range(nf)]
    for i in np.argsort(-per_code, kind="stable"):
        if len(kept[owner[i]]) < k:
            kept[owner[i]].append(int(i))
    return np.array(sorted(i for rows in kept for i in rows), dtype=np.int64)


def med_from_mi(mi: np.ndarray, topk: int = 0) -> dict[str, float]:
    """MED's D and C (and top-k's) from a (codes × factors) MI matrix."""
    importance = med_importance(mi)
    base = dci_from_importance(importance)
    out = {"disentanglement": base["disentanglement"], "completeness": base["completeness"]}
    if topk > 0:
        top = dci_from_importance(importance[topk_rows(importance, topk)])
        out[f"top{topk}_disentanglement"], out[f"top{topk}_completeness"] = top["disentanglement"], top["completeness"]
    return out


def med(codes, factors, codes_test, factors_test, num_bins: int = 20, topk: int = 1, progress=None) -> dict:
    """MED and top-k MED with logistic-regression informativeness on disjoint test rows."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression

    factors, factors_test, mi, ztr, zte = mi_and_standardised(codes, factors, codes_test, factors_test, num_bins)
    acc_train, acc_test = [], []
    for j in range(factors.shape[1]):
        y = factors[:, j]
        if len(np.unique(y)) > 1:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                model = LogisticRegression().fit(ztr, y)
            acc_train.append(float(np.mean(model.predict(ztr) == y)))
            acc_test.append(float(np.mean(model.predict(zte) == factors_test[:, j])))
        if progress is not None:
            progress(1)
    nan = float("nan")
    return {**med_from_mi(mi, topk), "informativeness_train": float(np.mean(acc_train)) if acc_train else nan,
            "informativeness_test": float(np.mean(acc_test)) if acc_test else nan, "_importance": med_importance(mi)}
