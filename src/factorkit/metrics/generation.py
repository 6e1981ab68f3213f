"""Sample quality of a generative model without downloads: a Fréchet distance in the judge's
feature space (issue 19, must-show 6). An offline stand-in for FID (Heusel et al. 2017), which
needs Inception weights that cannot be fetched here: the same closed form,

    FD = ‖μ_r − μ_g‖² + Tr(Σ_r + Σ_g − 2 (Σ_r Σ_g)^½)                     (Heusel et al., eq. 6)

between Gaussians fitted to features of real test images and of the model's samples; the features
are the judge's last convolution (:mod:`factorkit.metrics.classifier`), averaged over space (128
dimensions at the judge's width 16). Not comparable with published FIDs: only between models on
the same dataset and judge. Beside it, ``judge-fd.real``: the same distance between two disjoint
sets of real test images of the same size — the value a perfect sampler would get at that size
(FD is biased upwards for finite samples).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import linalg

Tensor = torch.Tensor


def frechet_distance(mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray, cov2: np.ndarray) -> float:
    """Eq. 6 of Heusel et al. between N(μ1, Σ1) and N(μ2, Σ2). Tr((Σ1 Σ2)^½) is computed as
    Σ √λ of the symmetric PSD matrix Σ1^½ Σ2 Σ1^½ (the same eigenvalues as Σ1 Σ2), which stays real
    and finite for singular covariances."""
    diff = mu1 - mu2
    w, v = linalg.eigh(cov1)
    root1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    inner = linalg.eigvalsh(root1 @ cov2 @ root1)
    return float(diff @ diff + np.trace(cov1) + np.trace(cov2) - 2 * np.sqrt(np.clip(inner, 0, None)).sum())


def gaussian_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return features.mean(0), np.cov(features, rowvar=False)


@torch.no_grad()
def judge_features(judge, images: Tensor, batch: int = 256) -> np.ndarray:
    """(N, C): the judge's last convolution's output averaged over space, images in [0, 1]."""
    judge.eval()
    conv = judge.features[:-1]  # everything but the Flatten
    return torch.cat([conv(images[i : i + batch].float()).mean((2, 3)) for i in range(0, len(images), batch)]).numpy()


@torch.no_grad()
def judge_fd(model, dataset, judge, num_samples: int = 2000, seed: int = 0) -> dict[str, float]:
    """FD between ``num_samples`` samples of ``model`` and as many real test images, and between two
    disjoint real sets of that size (``.real``)."""
    rng = np.random.default_rng(seed)
    n = min(num_samples, len(dataset) // 2)
    rows = rng.permutation(len(dataset))[: 2 * n]
    real_a = judge_features(judge, dataset.images_at(np.sort(rows[:n])))
    real_b = judge_features(judge, dataset.images_at(np.sort(rows[n:])))
    g = torch.Generator().manual_seed(seed)
    samples = torch.cat([model.sample(min(256, n - i), g).cpu() for i in range(0, n, 256)])
    fake = judge_features(judge, samples)
    stats_a = gaussian_stats(real_a)
    return {"judge-fd": frechet_distance(*stats_a, *gaussian_stats(fake)),
            "judge-fd.real": frechet_distance(*stats_a, *gaussian_stats(real_b)),
            "judge-fd.num_samples": float(n)}
