"""Interventional Robustness Score (Suter et al. 2019, "Robustly Disentangled Causal Mechanisms";
disentanglement_lib ``irs``), a pure core on arrays.

For factor i and each of its values k, the ``diff_quantile`` quantile (0.99) of |z − E[z | g_i = k]|
per code dimension, averaged over k, is how far the code still moves while g_i is held fixed.
Divided by the code's largest deviation from its mean, one minus it is the IRS matrix (codes ×
factors); a code's score is its best factor's entry, and IRS is their average weighted by each
code's largest deviation. Constant codes are dropped first; a representation with no varying
code scores 0. (A constant code is one whose values are all equal; the reference tests
``var > 0``, which rounding can pass for a constant column.)

As the reference, the factors are first put through the 20-bin equal-width histogram
discretizer (a factor with ≤ 20 values keeps its values apart; more are merged), so continuous
factors are scored the same way.

Fixed quirk: the reference's ``num_active_dims`` is ``np.sum(active_mus)``, the sum of the
active codes' *values*; here it is the number of active codes.
"""

from __future__ import annotations

import numpy as np

from .factors import _check, as_array, histogram_discretize


def irs_matrix(codes: np.ndarray, factors: np.ndarray, diff_quantile: float = 0.99) -> tuple[np.ndarray, np.ndarray]:
    """The IRS matrix (codes × factors) and each code's largest deviation from its mean, for
    discrete ``factors`` and codes that all vary."""
    max_dev = np.max(np.abs(codes - codes.mean(axis=0)), axis=0)
    spread = np.zeros((codes.shape[1], factors.shape[1]))
    for i in range(factors.shape[1]):
        values = np.unique(factors[:, i])
        for v in values:
            group = codes[factors[:, i] == v]
            spread[:, i] += np.quantile(np.abs(group - group.mean(axis=0)), diff_quantile, axis=0)
        spread[:, i] /= len(values)
    return 1.0 - spread / max_dev[:, None], max_dev


def irs(codes, factors, diff_quantile: float = 0.99, num_bins: int = 20) -> dict:
    """IRS of ``codes`` (N, D) against ``factors`` (N, K), discrete or continuous."""
    codes, factors = as_array(codes, np.float64), as_array(factors, np.float64)
    _check(codes, factors)
    active = np.ptp(codes, axis=0) > 0  # exact: the variance of a constant float column can round above 0
    if not active.any():
        return {"irs": 0.0, "irs.num_active_dims": 0}
    matrix, max_dev = irs_matrix(codes[:, active], histogram_discretize(factors, num_bins), diff_quantile)
    per_code = matrix.max(axis=1)
    return {"irs": float(np.average(per_code, weights=max_dev)), "irs.num_active_dims": int(active.sum()),
            "_matrix": matrix}
