import numpy as np
import pytest
import torch

from factorkit.metrics import attributes as A
from factorkit.metrics import editing as E
from factorkit.metrics import images as I


def test_hinge_bias_equals_brute_force():
    rng = np.random.default_rng(0)
    for _trial in range(20):
        n = int(rng.integers(5, 60))
        s = rng.normal(size=n) * rng.uniform(0.1, 3)
        c = rng.choice([-1.0, 1.0], n)
        b = A.hinge_bias(s, c)
        breakpoints = c - s  # the objective's kinks
        brute = A.hinge_objective(breakpoints, s, c).min()
        assert A.hinge_objective([b], s, c)[0] == pytest.approx(brute, abs=1e-9)
        # and no bias anywhere does better (dense grid)
        grid = np.linspace(breakpoints.min() - 1, breakpoints.max() + 1, 2001)
        assert A.hinge_objective(grid, s, c).min() >= brute - 1e-9


def test_attr_projection_separable_and_majority():
    rng = np.random.default_rng(1)
    attrs = (rng.random((2000, 3)) < [0.5, 0.2, 0.05]).astype(float)
    feats = np.concatenate([attrs * 3 + rng.normal(size=attrs.shape) * 0.3, rng.normal(size=(2000, 5))], 1)
    out = A.attr_projection(feats[:1500], attrs[:1500], feats[1500:], attrs[1500:], names=["a", "b", "c"])
    assert out["a"] > 0.99 and out["b"] > 0.99 and out["c"] > 0.99
    assert out["c.majority"] == pytest.approx(max(attrs[1500:, 2].mean(), 1 - attrs[1500:, 2].mean()))
    noise = A.attr_projection(rng.normal(size=(1500, 8)), attrs[:1500], rng.normal(size=(500, 8)), attrs[1500:], names=["a", "b", "c"])
    assert abs(noise["a"] - 0.5) < 0.1  # balanced attribute: chance


def test_average_precision_hand_computed():
    rel = torch.tensor([[1, 0, 1, 0], [0, 0, 0, 1], [0, 0, 0, 0]], dtype=torch.bool)
    ap = A.average_precision(rel)
    assert ap[0] == pytest.approx((1 / 1 + 2 / 3) / 2)
    assert ap[1] == pytest.approx(1 / 4)
    assert torch.isnan(ap[2])


def test_nn_map_random_features_and_best_chunk():
    rng = np.random.default_rng(0)
    n = 1200
    labels = np.stack([rng.integers(0, 2, n), rng.integers(0, 4, n)], 1)
    rand = A.nn_map(rng.normal(size=(n, 6)), labels, num_queries=400, names=["two", "four"])
    assert rand["two"] == pytest.approx(0.5, abs=0.03) and rand["four"] == pytest.approx(0.25, abs=0.03)
    # chunk 'b' carries attribute 'four': retrieval on it is perfect, and it is chosen
    feats = np.concatenate([rng.normal(size=(n, 3)), labels[:, 1:2] * 5.0 + 0.01 * rng.normal(size=(n, 1)), rng.normal(size=(n, 2))], 1)
    out = A.nn_map(feats, labels, chunks={"a": slice(0, 3), "b": slice(3, 6)}, names=["two", "four"], num_queries=300)
    assert out["four"] > 0.95 and out["four.chunk"] == "b"
    assert out["_table"].shape == (2, 2)


def test_image_metrics_hand_computed():
    x = torch.zeros(2, 3, 64, 64)
    y = torch.zeros(2, 3, 64, 64)
    y[0] += 0.1  # constant error 0.1 → mse 0.01, rmse 0.1, psnr 20 dB
    v = I.per_image(x, y)
    assert v["mse"][0] == pytest.approx(0.01, abs=1e-6) and v["rmse"][0] == pytest.approx(0.1, abs=1e-6)
    assert v["psnr"][0] == pytest.approx(20.0, abs=1e-4)
    z = torch.rand(2, 3, 64, 64)
    same = I.per_image(z, z)
    assert torch.allclose(same["ssim"], torch.ones(2), atol=1e-5) and torch.allclose(same["ms-ssim"], torch.ones(2), atol=1e-5)
    s = I.summarize({"mse": torch.tensor([1.0, 3.0])})
    assert s == {"mse": 2.0, "mse.std": 1.0}
    assert I.ms_ssim_setup(64) == (7, pytest.approx(tuple(b / sum(I.WANG_BETAS[:3]) for b in I.WANG_BETAS[:3])))
    assert I.ms_ssim_setup(256)[0] == 11 and len(I.ms_ssim_setup(256)[1]) == 5


def test_wilson_interval():
    lo, hi = E.wilson_interval(50, 100)
    assert lo == pytest.approx(0.4038, abs=1e-3) and hi == pytest.approx(0.5962, abs=1e-3)
    assert E.wilson_interval(0, 10)[0] == 0.0


def test_ms_ssim_equals_torchmetrics_where_it_applies():
    from torchmetrics.functional.image import multiscale_structural_similarity_index_measure as tm

    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, 3, 64, 64, generator=g)
    y = (x + 0.1 * torch.randn(4, 3, 64, 64, generator=g)).clamp(0, 1)
    betas = tuple(b / sum(I.WANG_BETAS[:3]) for b in I.WANG_BETAS[:3])
    ref = tm(y, x, data_range=1.0, kernel_size=11, betas=betas, normalize="relu", reduction="none")
    torch.testing.assert_close(I.ms_ssim(y, x, window=11, betas=betas), ref, atol=1e-5, rtol=0)
    # default for 64 px: 7-tap window, differentiable
    xr = x.clone().requires_grad_(True)
    I.ms_ssim(xr, y).mean().backward()
    assert torch.isfinite(xr.grad).all()


def test_edit_intensity_follows_the_edit_and_reuses_fitted_svms(monkeypatch):
    import factorkit as fk

    train, test = fk.data.load("faces", "train", size=1500), fk.data.load("faces", "test", size=1500)
    k = train.info.attribute_index("Eyeglasses")
    pos = train.images_at(np.flatnonzero(train.attribute_array()[:, k] > 0.5)[:200]).mean(0)

    class Oracle:  # "edits" to the mean image with glasses when v ≥ 0.5, else leaves the face alone
        def edit(self, images, attribute, value):
            return pos.expand_as(images).clone() if value >= 0.5 else images

    fits = []
    real = __import__("sklearn.svm", fromlist=["LinearSVC"]).LinearSVC.fit
    monkeypatch.setattr("sklearn.svm.LinearSVC.fit", lambda self, *a, **kw: fits.append(1) or real(self, *a, **kw))
    E._SVMS.clear()
    r = E.edit_intensity(Oracle(), train, test, "Eyeglasses", values=(0.25, 1.0), repeats=2, max_train=300, max_test=100)
    assert r["values"] == [0.25, 1.0] and r["n"] == 100 and len(fits) == 2
    assert r["error"][0] > 0.5 and r["error"][1] == 0.0  # unedited faces stay 'without'; the edit moves all
    assert 0.5 <= r["svm_majority"] <= 1.0
    again = E.edit_intensity(Oracle(), train, test, "Eyeglasses", values=(0.25, 1.0), repeats=2, max_train=300, max_test=100)
    assert len(fits) == 2 and again["error"] == r["error"]  # SVMs fitted once per (dataset, attribute, repeat)
