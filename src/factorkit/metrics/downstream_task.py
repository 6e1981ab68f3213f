"""Downstream-task scores (disentanglement_lib ``downstream_task``): how well a small classifier
trained on n labelled codes predicts each factor, for n = 10, 100, 1,000 and 10,000.

Per training size n and predictor, one classifier per factor on the first n of a seeded
permutation of the training rows; its accuracy on the training rows and on every test row.
Reported per (predictor, n): the mean and the minimum over factors of the test accuracy (the
reference's ``mean_test_accuracy`` / ``min_test_accuracy``); the training accuracies and the
per-factor values are details.

Predictors, as the reference's ``make_predictor_fn`` options:

* ``logistic`` — ``LogisticRegressionCV(Cs=10, cv=KFold(5))`` (scikit-learn defaults otherwise);
* ``gbt`` — ``GradientBoostingClassifier()`` with scikit-learn's defaults, fitted by factorkit's
  vectorised implementation of the same model (:mod:`factorkit.metrics.gbt`); with ``--fast``
  on 256 quantile bins per code.

Stated differences from the reference: the rows are drawn without replacement from the train
split and the test split (disjoint) rather than sampled afresh with replacement; a size larger
than the training rows available is skipped and named in ``downstream.skipped``; a factor with a
single value in the n rows is predicted as that value; where a cross-validation fold holds one
class only, scikit-learn cannot fit it and the plain ``LogisticRegression()`` is used for that
factor (counted in ``downstream.logistic_fallbacks``). Convergence warnings (the reference's
100 lbfgs iterations) and scikit-learn's notices of changing defaults are not printed.
"""

from __future__ import annotations

import warnings

import numpy as np

from .factors import _check, as_array, encode_factors

PREDICTORS = ("logistic", "gbt")


def _fit(predictor: str, x: np.ndarray, y: np.ndarray, seed: int, fast: bool) -> tuple[object, bool]:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
    from sklearn.model_selection import KFold

    if predictor == "gbt":
        from .gbt import GradientBoosting

        return GradientBoosting(bins=256 if fast else None, random_state=seed).fit(x, y), False
    with warnings.catch_warnings():  # not printed: lbfgs's 100 iterations, scikit-learn's notices of future defaults
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", FutureWarning)
        try:
            return LogisticRegressionCV(Cs=10, cv=KFold(n_splits=5)).fit(x, y), False
        except ValueError:  # a fold with one class: scikit-learn cannot fit it
            return LogisticRegression().fit(x, y), True


def downstream(codes, factors, codes_test, factors_test, sizes=(10, 100, 1000, 10000), predictors=PREDICTORS,
               seed: int = 0, fast: bool = False, progress=None) -> dict:
    """Accuracy of each predictor at each training size, per factor, on disjoint test rows."""
    from ..errors import UsageError

    codes, codes_test = as_array(codes, np.float64), as_array(codes_test, np.float64)
    factors, factors_test = encode_factors(factors, factors_test)
    _check(codes, factors)
    for p in predictors:
        if p not in PREDICTORS:
            raise UsageError(f"downstream predictor {p!r}; valid: {', '.join(PREDICTORS)}")
    order = np.random.default_rng(seed).permutation(len(codes))
    out: dict = {}
    skipped, fallbacks, details = [], 0, {}
    for n in sizes:
        n = int(n)
        if n < 5:
            raise UsageError(f"downstream size {n}: must be ≥ 5 (the logistic predictor uses 5-fold cross-validation)")
        if n > len(codes):
            skipped.append(n)
            continue
        rows = np.sort(order[:n])
        x, f = codes[rows], factors[rows]
        for p in predictors:
            train, test = [], []
            for j in range(factors.shape[1]):
                y = f[:, j]
                if len(np.unique(y)) < 2:  # nothing to learn: the one value seen
                    train.append(1.0)
                    test.append(float(np.mean(factors_test[:, j] == y[0])))
                else:
                    model, fell_back = _fit(p, x, y, seed, fast)
                    fallbacks += fell_back
                    train.append(float(np.mean(model.predict(x) == y)))
                    test.append(float(np.mean(model.predict(codes_test) == factors_test[:, j])))
                if progress is not None:
                    progress(1)
            out[f"{p}.{n}.mean_test"] = float(np.mean(test))
            out[f"{p}.{n}.min_test"] = float(np.min(test))
            details[f"{p}.{n}"] = {"train": train, "test": test}
    out["logistic_fallbacks"] = fallbacks
    out["skipped"] = skipped
    out["_per_factor"] = details
    return out


def total_steps(sizes, predictors, num_factors: int, num_rows: int) -> int:
    """Progress units of :func:`downstream`: one per (size that fits, predictor, factor)."""
    return sum(num_factors * len(predictors) for n in sizes if int(n) <= num_rows)
