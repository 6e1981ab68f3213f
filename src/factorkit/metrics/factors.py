"""Ground-truth-factor metrics: pure cores on arrays, plus sampling protocols.

Definitions and defaults follow disentanglement_lib's ``unsupervised_study_v1`` (see
``shared/design/metrics.md``); the reference's known defects are fixed and say so:

* every score is deterministic for ``seed`` (the reference leaves DCI's gradient boosting
  and SAP's SVMs unseeded);
* train and test rows are disjoint where the caller gives two arrays (the evaluation driver
  draws them from the dataset's train and test splits);
* FactorVAE reports ``num_active_dims`` as a count (the reference reports the mask length);
* DCI "informativeness" is reported as what it is, an accuracy;
* factors may take any integer values (they are re-indexed per column).

Arrays: ``codes`` (N, D) float, ``factors`` (N, K) int; numpy or torch.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from .gbt import GradientBoosting

Array = np.ndarray


# --- array plumbing ---------------------------------------------------------------------------


def as_array(x: Any, dtype=None) -> Array:
    if torch.is_tensor(x):
        x = x.detach().cpu().numpy()
    x = np.asarray(x)
    if x.ndim == 1:
        x = x[:, None]
    return x.astype(dtype) if dtype is not None else x


def encode_factors(*factor_arrays: Array) -> list[Array]:
    """Re-index each factor column to 0..V−1 consistently across the given arrays."""
    arrays = [as_array(f) for f in factor_arrays]
    sizes = [len(a) for a in arrays]
    stacked = np.concatenate(arrays, 0)
    out = np.empty(stacked.shape, dtype=np.int64)
    for j in range(stacked.shape[1]):
        out[:, j] = np.unique(stacked[:, j], return_inverse=True)[1].reshape(-1)
    return np.split(out, np.cumsum(sizes)[:-1])


def _check(codes: Array, factors: Array) -> None:
    if codes.ndim != 2 or factors.ndim != 2 or len(codes) != len(factors):
        from ..errors import UsageError

        raise UsageError(f"codes must be (N, D) and factors (N, K) with the same N; got {codes.shape} and {factors.shape}")


def histogram_discretize(codes: Array, num_bins: int = 20) -> Array:
    """Each column into ``num_bins`` equal-width bins over its own range (1..num_bins), as
    disentanglement_lib's ``histogram_discretizer`` (np.histogram edges + np.digitize)."""
    out = np.zeros(codes.shape, dtype=np.int64)
    for i in range(codes.shape[1]):
        edges = np.histogram(codes[:, i], num_bins)[1]
        out[:, i] = np.digitize(codes[:, i], edges[:-1])
    return out


def mutual_information(a: Array, b: Array) -> Array:
    """Discrete mutual information (nats) between every column of ``a`` and of ``b`` (both int):
    the same value as ``sklearn.metrics.mutual_info_score`` on each pair."""
    n = len(a)
    out = np.zeros((a.shape[1], b.shape[1]))
    for i in range(a.shape[1]):
        ai = np.unique(a[:, i], return_inverse=True)[1].reshape(-1)
        pa = np.bincount(ai) / n
        for j in range(b.shape[1]):
            bj = np.unique(b[:, j], return_inverse=True)[1].reshape(-1)
            pb = np.bincount(bj) / n
            joint = np.bincount(ai * len(pb) + bj, minlength=len(pa) * len(pb)).reshape(len(pa), len(pb)) / n
            nz = joint > 0
            out[i, j] = float(np.sum(joint[nz] * (np.log(joint[nz]) - np.log(np.outer(pa, pb)[nz]))))
    return np.maximum(out, 0.0)


def entropy_discrete(factors: Array) -> Array:
    """H(factor_j) in nats for each column."""
    out = np.zeros(factors.shape[1])
    for j in range(factors.shape[1]):
        p = np.bincount(np.unique(factors[:, j], return_inverse=True)[1].reshape(-1)) / len(factors)
        out[j] = -np.sum(p * np.log(p))
    return out


# --- MIG --------------------------------------------------------------------------------------


def mig(codes, factors, num_bins: int = 20, continuous: bool = False) -> dict[str, float]:
    """Mutual Information Gap (Chen et al. 2018): mean over factors of the gap between the two
    codes with the highest MI with the factor, divided by the factor's entropy. Constant
    factors (zero entropy in the sample) are left out of the mean.

    ``continuous``: the factors are real-valued; the estimator then bins each factor as the
    codes are (``num_bins`` equal-width bins over its range) and MI and entropy are those of
    the binned values — a plug-in estimate that depends on ``num_bins``, stated as such."""
    codes, factors = as_array(codes, np.float64), as_array(factors, np.float64 if continuous else None)
    _check(codes, factors)
    if continuous:
        factors = histogram_discretize(factors, num_bins)
    m = mutual_information(histogram_discretize(codes, num_bins), factors)  # (D, K)
    h = entropy_discrete(factors)
    keep = h > 0
    if codes.shape[1] < 2:
        top = np.sort(m, axis=0)[::-1]
        gap = top[0]
    else:
        top = np.sort(m, axis=0)[::-1]
        gap = top[0] - top[1]
    return {"mig": float(np.mean(gap[keep] / h[keep])) if keep.any() else float("nan")}


# --- SAP --------------------------------------------------------------------------------------


def sap(codes, factors, codes_test, factors_test, continuous: bool = False, seed: int = 0,
        progress=None) -> dict[str, float]:
    """Separated Attribute Predictability (Kumar et al. 2018): per (code, factor) the test
    accuracy of a linear SVM (C=0.01, balanced) on that one code — or, for continuous factors,
    the R² of a linear fit; SAP = mean over factors of (best − second best)."""
    from sklearn.svm import LinearSVC

    codes, codes_test = as_array(codes, np.float64), as_array(codes_test, np.float64)
    factors, factors_test = (as_array(factors, np.float64), as_array(factors_test, np.float64)) if continuous \
        else encode_factors(factors, factors_test)
    _check(codes, factors)
    d, k = codes.shape[1], factors.shape[1]
    score = np.zeros((d, k))
    for i in range(d):
        for j in range(k):
            if continuous:
                cov = np.cov(codes[:, i], factors[:, j], ddof=1)
                var_z, var_y = cov[0, 0], cov[1, 1]
                score[i, j] = 0.0 if var_z <= 1e-12 or var_y <= 1e-12 else cov[0, 1] ** 2 / (var_z * var_y)
            elif len(np.unique(factors[:, j])) < 2:
                score[i, j] = 0.0
            else:
                clf = LinearSVC(C=0.01, class_weight="balanced", random_state=seed)
                clf.fit(codes[:, i : i + 1], factors[:, j])
                score[i, j] = float(np.mean(clf.predict(codes_test[:, i : i + 1]) == factors_test[:, j]))
        if progress is not None:
            progress(1)
    top = np.sort(score, axis=0)[::-1]
    gaps = top[0] - top[1] if d > 1 else top[0]
    return {"sap": float(np.mean(gaps)), "_matrix": score}


# --- DCI --------------------------------------------------------------------------------------


def _entropy(p: Array, base: float, axis: int) -> Array:
    p = p / p.sum(axis=axis, keepdims=True)
    return -np.sum(np.where(p > 0, p * np.log(p), 0.0), axis=axis) / np.log(base)


def dci_from_importance(importance: Array) -> dict[str, float]:
    """Disentanglement and completeness from an importance matrix R (codes × factors)
    (Eastwood & Williams 2018): D = Σ_i ρ_i (1 − H_K(R_i·)), C = Σ_j ρ_j (1 − H_D(R_·j)),
    with ρ the normalised row/column sums and +1e-11 inside the entropies (as the reference)."""
    r = np.abs(np.asarray(importance, dtype=np.float64))
    d, k = r.shape
    per_code = 1.0 - _entropy(r + 1e-11, k, axis=1) if k > 1 else np.ones(d)
    per_factor = 1.0 - _entropy(r + 1e-11, d, axis=0) if d > 1 else np.ones(k)
    w = r if r.sum() > 0 else np.ones_like(r)
    code_w, factor_w = w.sum(1) / w.sum(), w.sum(0) / w.sum()
    return {"disentanglement": float(np.sum(per_code * code_w)), "completeness": float(np.sum(per_factor * factor_w))}


DCI_BACKENDS = ("vectorised", "fast", "sklearn")


def _dci_fit(codes, y, codes_test, y_test, backend: str, seed: int, bins: int) -> tuple[Array, float, float]:
    """Importances and train/test accuracy of one factor's boosted classifier."""
    if backend == "sklearn":
        from sklearn.ensemble import GradientBoostingClassifier

        model = GradientBoostingClassifier(random_state=seed).fit(codes, y)
    else:
        model = GradientBoosting(bins=bins if backend == "fast" else None, random_state=seed).fit(codes, y)
    return (np.abs(model.feature_importances_), float(np.mean(model.predict(codes) == y)),
            float(np.mean(model.predict(codes_test) == y_test)))


def dci(codes, factors, codes_test, factors_test, backend: str = "vectorised", seed: int = 0,
        bins: int = 256, continuous: bool = False, progress=None) -> dict[str, float]:
    """DCI (Eastwood & Williams 2018): per factor a gradient-boosted classifier (scikit-learn
    ``GradientBoostingClassifier`` defaults) on all codes; importance matrix from its
    impurity-based feature importances; informativeness = its train/test accuracy.

    ``backend``: ``vectorised`` (default) — factorkit's vectorised fit of the same model
    (:mod:`factorkit.metrics.gbt`), ties between features broken at random for ``seed`` as
    scikit-learn does, so its scores fall within scikit-learn's seed-to-seed spread (not equal to
    any one seed: hence not called "exact", its name before issue 15); ``fast`` — the same model
    on ``bins`` (256) quantile bins per code; ``sklearn`` — scikit-learn itself, seeded (slow).

    ``continuous``: real-valued factors, DCI "with regressors" as Eastwood & Williams define it:
    per factor scikit-learn's ``GradientBoostingRegressor()`` (defaults, seeded; the vectorised
    backends fit classifiers only, so ``backend`` must be ``vectorised`` — the default, taken to
    mean "the default model" — or ``sklearn``); informativeness is then its R² (keys
    ``dci.r2_train`` / ``dci.r2_test``). ``progress(1)`` is called after each factor.
    """
    if backend not in DCI_BACKENDS:
        from ..errors import UsageError

        hint = " ('exact' was renamed 'vectorised': it matches scikit-learn's spread over seeds, not one seed)" \
            if backend == "exact" else ""
        raise UsageError(f"dci backend {backend!r}; valid: {', '.join(DCI_BACKENDS)}{hint}")
    if continuous and backend == "fast":
        from ..errors import UsageError

        raise UsageError("dci backend 'fast' fits classifiers only; continuous factors use scikit-learn's "
                         "GradientBoostingRegressor (backend vectorised, the default, or sklearn)")
    codes, codes_test = as_array(codes, np.float64), as_array(codes_test, np.float64)
    if continuous:
        factors, factors_test = as_array(factors, np.float64), as_array(factors_test, np.float64)
    else:
        factors, factors_test = encode_factors(factors, factors_test)
    _check(codes, factors)
    d, k = codes.shape[1], factors.shape[1]
    importance = np.zeros((d, k))
    acc_train, acc_test = [], []
    for j in range(k):
        if len(np.unique(factors[:, j])) >= 2:  # a constant factor carries no information
            fit = _dci_regress if continuous else _dci_fit
            importance[:, j], tr, te = fit(codes, factors[:, j], codes_test, factors_test[:, j], backend, seed, bins)
            acc_train.append(tr)
            acc_test.append(te)
        if progress is not None:
            progress(1)
    out = dci_from_importance(importance)
    name = "r2" if continuous else "informativeness"
    return {
        "dci.disentanglement": out["disentanglement"],
        "dci.completeness": out["completeness"],
        f"dci.{name}_train": float(np.mean(acc_train)) if acc_train else float("nan"),
        f"dci.{name}_test": float(np.mean(acc_test)) if acc_test else float("nan"),
        "_importance": importance,
    }


def _dci_regress(codes, y, codes_test, y_test, backend: str, seed: int, bins: int) -> tuple[Array, float, float]:
    """Importances and train/test R² of one continuous factor's boosted regressor."""
    from sklearn.ensemble import GradientBoostingRegressor

    model = GradientBoostingRegressor(random_state=seed).fit(codes, y)
    return np.abs(model.feature_importances_), float(model.score(codes, y)), float(model.score(codes_test, y_test))


# --- modularity & explicitness ------------------------------------------------------------------


def modularity_from_mi(mi: Array) -> float:
    """Ridgeway & Zemel (2018): per code 1 − (Σ_j m_ij² − max_j m_ij²)/(max_j m_ij² (K−1)),
    0 for a code with no information; mean over codes."""
    sq = np.square(mi)
    mx = sq.max(axis=1)
    k = mi.shape[1]
    if k < 2:
        return float(np.mean(mx > 0))
    with np.errstate(invalid="ignore", divide="ignore"):
        score = 1.0 - (sq.sum(1) - mx) / (mx * (k - 1.0))
    score[mx == 0] = 0.0
    return float(np.mean(score))


def mi_and_standardised(codes, factors, codes_test, factors_test, num_bins: int = 20):
    """What modularity and MED share: re-indexed factors, the (codes × factors) MI matrix of the
    ``num_bins``-bin discretised training codes, and train/test codes standardised with the
    training mean and std."""
    codes, codes_test = as_array(codes, np.float64), as_array(codes_test, np.float64)
    factors, factors_test = encode_factors(factors, factors_test)
    _check(codes, factors)
    mi = mutual_information(histogram_discretize(codes, num_bins), factors)
    mean, std = codes.mean(0), codes.std(0)
    std = np.where(std > 0, std, 1.0)
    return factors, factors_test, mi, (codes - mean) / std, (codes_test - mean) / std


def modularity(codes, factors, codes_test, factors_test, num_bins: int = 20, progress=None) -> dict[str, float]:
    """Modularity (20-bin MI as in MIG) and explicitness: codes standardised with the train
    mean/std, one ``LogisticRegression()`` per factor, macro ROC-AUC of its probabilities
    against one-hot labels (classes from the training fit), mean over factors."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.preprocessing import label_binarize

    factors, factors_test, mi, ztr, zte = mi_and_standardised(codes, factors, codes_test, factors_test, num_bins)
    roc_train, roc_test = [], []
    for j in range(factors.shape[1]):
        y, y_test = factors[:, j], factors_test[:, j]
        if progress is not None:
            progress(1)
        if len(np.unique(y)) < 2:
            continue
        clf = LogisticRegression(max_iter=1000).fit(ztr, y)

        def auc(x, labels, clf=clf):
            proba = clf.predict_proba(x)
            onehot = label_binarize(labels, classes=clf.classes_)
            if len(clf.classes_) == 2:
                onehot = np.concatenate([1 - onehot, onehot], 1)
            present = onehot.sum(0) > 0
            present &= onehot.sum(0) < len(labels)
            return float(roc_auc_score(onehot[:, present], proba[:, present], average="macro")) if present.any() else float("nan")

        roc_train.append(auc(ztr, y))
        roc_test.append(auc(zte, y_test))
    return {
        "modularity": modularity_from_mi(mi),
        "explicitness_train": float(np.nanmean(roc_train)) if roc_train else float("nan"),
        "explicitness_test": float(np.nanmean(roc_test)) if roc_test else float("nan"),
    }


# --- interventional metrics: Higgins (β-VAE) and FactorVAE ---------------------------------------

Representation = Callable[[torch.Tensor], np.ndarray]


def _encode_all(representation: Representation, images: torch.Tensor, batch: int = 256) -> np.ndarray:
    return np.concatenate([as_array(representation(images[i : i + batch]), np.float64) for i in range(0, len(images), batch)])


class GeneratorSampler:
    """Intervention sampler for a dataset with a factor grid (``sample_factors`` / ``images``)."""

    def __init__(self, dataset) -> None:
        self.dataset = dataset
        self.num_factors = len(dataset.info.factors)

    def pair_batch(self, k: int, batch: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        f1 = self.dataset.sample_factors(batch, rng)
        f2 = self.dataset.sample_factors(batch, rng)
        f2[:, k] = f1[:, k]
        return self.dataset.images(f1, rng), self.dataset.images(f2, rng)

    def fixed_batch(self, k: int, batch: int, rng: np.random.Generator) -> torch.Tensor:
        f = self.dataset.sample_factors(batch, rng)
        f[:, k] = f[0, k]
        return self.dataset.images(f, rng)

    def random_batch(self, batch: int, rng: np.random.Generator) -> torch.Tensor:
        return self.dataset.images(self.dataset.sample_factors(batch, rng), rng)


class AttributeSampler:
    """Pair protocol for real images without a generator (methods.md §6.1): both images of a
    pair share the value of attribute k (drawn uniformly from {0, 1}); all else is free."""

    def __init__(self, dataset) -> None:
        self.dataset = dataset
        attrs = dataset.attribute_array()
        self.num_factors = attrs.shape[1]
        self.members = [[np.flatnonzero(attrs[:, k] == v) for v in (0, 1)] for k in range(attrs.shape[1])]

    def _draw(self, rows: np.ndarray, batch: int, rng: np.random.Generator) -> torch.Tensor:
        return self.dataset.images_at(np.sort(rng.choice(rows, batch, replace=len(rows) < batch)))

    def pair_batch(self, k: int, batch: int, rng: np.random.Generator):
        v = int(rng.integers(0, 2))
        rows = self.members[k][v] if len(self.members[k][v]) else self.members[k][1 - v]
        return self._draw(rows, batch, rng), self._draw(rows, batch, rng)

    def fixed_batch(self, k: int, batch: int, rng: np.random.Generator) -> torch.Tensor:
        return self.pair_batch(k, batch, rng)[0]

    def random_batch(self, batch: int, rng: np.random.Generator) -> torch.Tensor:
        return self._draw(np.arange(len(self.dataset)), batch, rng)


def sampler_for(dataset):
    return GeneratorSampler(dataset) if dataset.info.has_generator else AttributeSampler(dataset)


def higgins(dataset, representation: Representation, num_train: int = 10000, num_eval: int = 5000,
            batch_size: int = 64, seed: int = 0, progress=None, sampler=None) -> dict[str, float]:
    """β-VAE metric (Higgins et al. 2017; disentanglement_lib ``beta_vae_sklearn``): each point
    picks a factor k, draws ``batch_size`` pairs that share factor k, and records the mean
    |r(x1) − r(x2)| per code; a ``LogisticRegression`` predicts k; score = its accuracy on
    ``num_eval`` fresh points. Chance = 1/#factors. ``sampler`` replaces the dataset's (floors.py)."""
    from sklearn.linear_model import LogisticRegression

    sampler = sampler or sampler_for(dataset)
    rng = np.random.default_rng(seed)

    group = max(1, 1024 // batch_size)  # points per representation call

    def points(n: int):
        labels = rng.integers(0, sampler.num_factors, size=n)
        feats = []
        for g in range(0, n, group):
            pairs = [sampler.pair_batch(int(k), batch_size, rng) for k in labels[g : g + group]]
            ra = _encode_all(representation, torch.cat([a for a, _ in pairs]))
            rb = _encode_all(representation, torch.cat([b for _, b in pairs]))
            diff = np.abs(ra - rb).reshape(len(pairs), batch_size, -1)
            feats.append(diff.mean(axis=1))
            if progress is not None:
                progress(len(pairs))
        return np.concatenate(feats), labels

    x_train, y_train = points(num_train)
    x_eval, y_eval = points(num_eval)
    model = LogisticRegression(max_iter=1000, random_state=seed).fit(x_train, y_train)
    return {
        "higgins": float(model.score(x_eval, y_eval)),
        "higgins.train_accuracy": float(model.score(x_train, y_train)),
        "higgins.chance": 1.0 / sampler.num_factors,
    }


def factorvae(dataset, representation: Representation, num_train: int = 10000, num_eval: int = 5000,
              batch_size: int = 64, num_variance_estimate: int = 10000, threshold: float = 0.05,
              seed: int = 0, progress=None, sampler=None) -> dict[str, float]:
    """FactorVAE metric (Kim & Mnih 2018; disentanglement_lib ``factor_vae``): codes with
    std ≥ ``threshold`` over ``num_variance_estimate`` samples are active; each point fixes one
    factor k in a batch and votes (k, argmin_active local var / global var); a majority-vote
    classifier from the training votes; score = the fraction of eval votes it gets right."""
    sampler = sampler or sampler_for(dataset)
    rng = np.random.default_rng(seed)
    reps = _encode_all(representation, torch.cat([sampler.random_batch(min(1000, num_variance_estimate - i), rng)
                                                  for i in range(0, num_variance_estimate, 1000)]))
    global_var = np.var(reps, axis=0, ddof=1)
    active = np.sqrt(global_var) >= threshold
    num_codes = reps.shape[1]
    if not active.any():
        return {"factorvae": 0.0, "factorvae.train_accuracy": 0.0, "factorvae.num_active_dims": 0}
    active_idx = np.flatnonzero(active)

    group = max(1, 1024 // batch_size)

    def votes(n: int) -> np.ndarray:
        v = np.zeros((sampler.num_factors, num_codes))
        for g in range(0, n, group):
            ks = rng.integers(0, sampler.num_factors, size=min(group, n - g))
            r = _encode_all(representation, torch.cat([sampler.fixed_batch(int(k), batch_size, rng) for k in ks]))
            local = np.var(r.reshape(len(ks), batch_size, -1), axis=1, ddof=1)  # (group, D)
            argmin = active_idx[np.argmin(local[:, active] / global_var[active], axis=1)]
            np.add.at(v, (ks, argmin), 1)
            if progress is not None:
                progress(len(ks))
        return v

    train_votes, eval_votes = votes(num_train), votes(num_eval)
    classifier = np.argmax(train_votes, axis=0)
    cols = np.arange(num_codes)
    return {
        "factorvae": float(eval_votes[classifier, cols].sum() / eval_votes.sum()),
        "factorvae.train_accuracy": float(train_votes[classifier, cols].sum() / train_votes.sum()),
        "factorvae.num_active_dims": int(active.sum()),
        "factorvae.chance": 1.0 / sampler.num_factors,
    }
