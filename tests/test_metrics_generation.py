"""judge-fd (issue 19, must-show 6): the Fréchet distance's closed form, and the metric ranks a
sampler of real images far below a sampler of noise, near the real-vs-real reference."""

import numpy as np
import pytest
import torch

from factorkit.metrics.classifier import Judge
from factorkit.metrics.generation import frechet_distance, gaussian_stats, judge_fd
from tests.toy import tiny_dataset


def test_frechet_distance_closed_form():
    mu1, mu2 = np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 0.0])
    s1, s2 = np.array([1.0, 2.0, 0.5]), np.array([3.0, 2.0, 1.5])
    # diagonal covariances: Σ (μ1 − μ2)² + Σ (σ1 − σ2)²
    expected = float(((mu1 - mu2) ** 2).sum() + ((s1 - s2) ** 2).sum())
    got = frechet_distance(mu1, np.diag(s1**2), mu2, np.diag(s2**2))
    assert got == pytest.approx(expected, abs=1e-9)
    assert frechet_distance(mu2, np.diag(s2**2), mu1, np.diag(s1**2)) == pytest.approx(expected, abs=1e-9)
    rng = np.random.default_rng(0)
    a = rng.normal(size=(500, 4)) @ rng.normal(size=(4, 4))
    assert frechet_distance(*gaussian_stats(a), *gaussian_stats(a)) == pytest.approx(0.0, abs=1e-6)
    # full covariances: the FID reference's form with scipy's matrix square root
    from scipy import linalg

    b = rng.normal(size=(500, 4)) @ rng.normal(size=(4, 4)) + 0.3
    (m1, c1), (m2, c2) = gaussian_stats(a), gaussian_stats(b)
    reference = ((m1 - m2) ** 2).sum() + np.trace(c1 + c2 - 2 * np.real(linalg.sqrtm(c1 @ c2)))
    assert frechet_distance(m1, c1, m2, c2) == pytest.approx(reference, rel=1e-8)


class _Sampler:
    def __init__(self, images):
        self.images = images

    def sample(self, n, generator=None):
        idx = torch.randint(len(self.images), (n,), generator=generator)
        return self.images[idx]


def test_judge_fd_ranks_real_samples_below_noise():
    torch.manual_seed(0)
    ds = tiny_dataset(n=400, size=16)
    # structured "real" images: blobs at random places (the toy's own images are noise)
    rng = np.random.default_rng(0)
    real = torch.zeros(400, 1, 16, 16)
    for i, (r, c) in enumerate(rng.integers(2, 12, size=(400, 2))):
        real[i, 0, r : r + 4, c : c + 4] = 1.0
    ds.images_at = lambda rows: real[torch.as_tensor(np.asarray(rows))]
    ds.__len__ = lambda: 400
    judge = Judge.for_info(ds.info, width=8)
    good = judge_fd(_Sampler(real), ds, judge, num_samples=150)
    noise = judge_fd(_Sampler(torch.rand(400, 1, 16, 16)), ds, judge, num_samples=150)
    assert good["judge-fd.num_samples"] == 150
    assert noise["judge-fd"] > 10 * good["judge-fd"]
    assert good["judge-fd"] < 3 * good["judge-fd.real"]
