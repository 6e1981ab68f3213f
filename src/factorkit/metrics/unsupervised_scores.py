"""Unsupervised scores of a code (disentanglement_lib ``unsupervised_metrics``): no factors needed.

With Σ the sample covariance of the codes (``np.cov``, ddof 1):

* Gaussian total correlation — the KL divergence between N(0, Σ) and the product of its
  marginals, ½ (Σ_i log Σ_ii − log det Σ); 0 exactly when Σ is diagonal;
* Gaussian Wasserstein correlation — the squared 2-Wasserstein distance between the same two
  Gaussians as the reference writes it, 2 tr Σ − 2 tr (Σ · diag(Σ)[:, None])^½, and ``_norm``,
  that divided by tr Σ;
* mutual_info_score — the mean of the pairwise discrete mutual information (nats) between
  different codes after the 20-bin equal-width histogram discretizer, Σ_{i≠j} I / (D² − D).

Deviation from the reference, stated: codes that never vary are dropped first (their variance
is 0, so the reference's log det is −∞ and every covariance score NaN); the number kept is
``unsupervised.num_active_dims``. A code with fewer than two varying dimensions has no pair to
score: all four are NaN then.
"""

from __future__ import annotations

import numpy as np

from .factors import as_array, histogram_discretize, mutual_information


def gaussian_total_correlation(cov: np.ndarray) -> float:
    """½ (Σ log diag Σ − log det Σ): KL(N(0, Σ) ‖ N(0, diag Σ))."""
    cov = np.asarray(cov, dtype=np.float64)
    return float(0.5 * (np.sum(np.log(np.diag(cov))) - np.linalg.slogdet(cov)[1]))


def gaussian_wasserstein_correlation(cov: np.ndarray) -> float:
    """2 tr Σ − 2 tr sqrtm(Σ · diag(Σ)[:, None]) (the real part: the product is similar to a
    symmetric PSD matrix, so its square root's trace is real up to round-off)."""
    import warnings

    from scipy.linalg import LinAlgWarning, sqrtm

    cov = np.asarray(cov, dtype=np.float64)
    with warnings.catch_warnings():  # a singular Σ (duplicated codes) has a root; scipy only warns it may be inexact
        warnings.simplefilter("ignore", LinAlgWarning)
        root = sqrtm(cov * np.diag(cov)[:, None])
    return float(2.0 * np.trace(cov) - 2.0 * np.real(np.trace(root)))


def mean_pairwise_mi(codes: np.ndarray, num_bins: int = 20) -> float:
    """Mean discrete MI (nats) over ordered pairs of different codes, 20 equal-width bins."""
    d = codes.shape[1]
    disc = histogram_discretize(codes, num_bins)
    mi = mutual_information(disc, disc)
    np.fill_diagonal(mi, 0.0)
    return float(mi.sum() / (d * d - d))


def unsupervised(codes, num_bins: int = 20) -> dict:
    """The four scores of ``codes`` (N, D) on their varying dimensions."""
    codes = as_array(codes, np.float64)
    codes = codes[:, np.ptp(codes, axis=0) > 0]
    out = {"num_active_dims": int(codes.shape[1])}
    if codes.shape[1] < 2:
        nan = float("nan")
        return {**out, "gaussian_total_correlation": nan, "gaussian_wasserstein_correlation": nan,
                "gaussian_wasserstein_correlation_norm": nan, "mutual_info_score": nan}
    cov = np.cov(codes, rowvar=False)
    wc = gaussian_wasserstein_correlation(cov)
    return {**out, "gaussian_total_correlation": gaussian_total_correlation(cov),
            "gaussian_wasserstein_correlation": wc,
            "gaussian_wasserstein_correlation_norm": wc / float(np.trace(cov)),
            "mutual_info_score": mean_pairwise_mi(codes, num_bins)}
