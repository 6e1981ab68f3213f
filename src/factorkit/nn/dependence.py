"""Dependence measures between two batches of vectors (mddAE, Song et al., §3.4).

Both take ``a`` (N, p) and ``b`` (N, q) and return a scalar tensor, differentiable.
"""

from __future__ import annotations

import torch

Tensor = torch.Tensor


def pairwise_distances(x: Tensor) -> Tensor:
    """Euclidean distance matrix, eqs. 10–11: d_nm = ‖x_n − x_m‖.

    Computed from explicit differences (no ‖x‖²+‖y‖²−2xᵀy cancellation); where two rows
    coincide the distance is exactly 0 with a zero (sub)gradient instead of sqrt's infinite one.
    """
    d2 = (x[:, None, :] - x[None, :, :]).pow(2).sum(-1)
    positive = d2 > 0
    return torch.where(positive, torch.where(positive, d2, torch.ones_like(d2)).sqrt(), torch.zeros_like(d2))


def double_centre(d: Tensor) -> Tensor:
    """Eqs. 12–13: A_nm = a_nm − ā_n· − ā_·m + ā_··."""
    return d - d.mean(0, keepdim=True) - d.mean(1, keepdim=True) + d.mean()


def dcov2(a: Tensor, b: Tensor) -> Tensor:
    """Squared sample distance covariance (Székely et al. 2007), eq. 14:
    dCov²(A, B) = (1/N²) Σ_{n,m} A_nm B_nm, the V-statistic with double-centred distance matrices.
    Zero for a constant input; for independent samples it shrinks like 1/N."""
    a, b = a.reshape(len(a), -1).float(), b.reshape(len(b), -1).float()
    return (double_centre(pairwise_distances(a)) * double_centre(pairwise_distances(b))).mean()


def xcov(a: Tensor, b: Tensor) -> Tensor:
    """Cross-covariance penalty (Cheung et al. 2015), eq. 15:
    XCov = ½ Σ_{i,j} [(1/N) Σ_n (a_ni − ā_i)(b_nj − b̄_j)]²."""
    a, b = a.reshape(len(a), -1).float(), b.reshape(len(b), -1).float()
    c = (a - a.mean(0)).T @ (b - b.mean(0)) / len(a)
    return 0.5 * c.pow(2).sum()


def dcor2(a: Tensor, b: Tensor, eps: float = 1e-12) -> Tensor:
    """Squared sample distance correlation (Székely et al. 2007):
    dCor²(A, B) = dCov²(A, B) / √(dVar²(A) · dVar²(B)), in [0, 1] and invariant to rescaling
    either input (dCov² scales with the product of their scales). 0 when either input is constant."""
    a, b = a.reshape(len(a), -1).float(), b.reshape(len(b), -1).float()
    da, db = double_centre(pairwise_distances(a)), double_centre(pairwise_distances(b))
    v = (da * da).mean() * (db * db).mean()
    return (da * db).mean() / v.clamp_min(eps).sqrt()


def u_centre(d: Tensor) -> Tensor:
    """U-centring (Székely & Rizzo 2014, eq. 3): Ã_ij = a_ij − a_i·/(n−2) − a_·j/(n−2)
    + a_··/((n−1)(n−2)) off the diagonal, 0 on it."""
    n = len(d)
    row, col, tot = d.sum(1, keepdim=True), d.sum(0, keepdim=True), d.sum()
    out = d - row / (n - 2) - col / (n - 2) + tot / ((n - 1) * (n - 2))
    return out * (1 - torch.eye(n, dtype=d.dtype, device=d.device))


def dcov2_unbiased(a: Tensor, b: Tensor) -> Tensor:
    """Unbiased estimator of the squared distance covariance (Székely & Rizzo 2014):
    (1/(n(n−3))) Σ_{i≠j} Ã_ij B̃_ij with U-centred distance matrices. Its expectation is 0 for
    independent samples at any batch size, where eq. 14's V-statistic is biased upwards by
    ≈ E‖a−a'‖·E‖b−b'‖/n; it can be slightly negative. Needs n ≥ 4."""
    a, b = a.reshape(len(a), -1).float(), b.reshape(len(b), -1).float()
    n = len(a)
    return (u_centre(pairwise_distances(a)) * u_centre(pairwise_distances(b))).sum() / (n * (n - 3))
