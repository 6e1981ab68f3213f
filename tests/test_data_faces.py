import numpy as np
import pytest
import torch

import factorkit as fk
from factorkit.data import faces as F


@pytest.fixture(scope="module")
def faces_all():
    return fk.data.load("faces", "all")


def test_split_by_identity():
    train, test = fk.data.load("faces", "train", size=6000), fk.data.load("faces", "test", size=6000)
    assert len(train) + len(test) == 6000
    ids_train = set(F.identity_index(train.factor_array()[:, :7]))
    ids_test = set(F.identity_index(test.factor_array()[:, :7]))
    assert not ids_train & ids_test
    assert 0.05 < len(test) / 6000 < 0.15


def test_prevalences_and_correlated_pair(faces_all):
    a = faces_all.attribute_array()
    expected = F.PREVALENCE.copy()
    expected[F.OPEN] = 0.5 * F.PREVALENCE[F.SMILING] + 0.5 * F.PREVALENCE[F.OPEN]
    np.testing.assert_allclose(a.mean(0), expected, atol=0.015)
    r = np.corrcoef(a[:, F.SMILING], a[:, F.OPEN])[0, 1]
    assert 0.45 < r < 0.56
    independent = fk.data.load("faces", "all", correlation=0.0).attribute_array()
    assert abs(np.corrcoef(independent[:, F.SMILING], independent[:, F.OPEN])[0, 1]) < 0.03
    others = np.corrcoef(a.T)[np.triu_indices(7, 1)]
    assert np.sort(np.abs(others))[-2] < 0.03  # only the configured pair is correlated


def test_deterministic_and_factor_shapes():
    a = fk.data.load("faces", "test", size=3000)
    b = fk.data.load("faces", "test", size=3000)
    assert torch.equal(a[5]["image"], b[5]["image"])
    item = a[5]
    assert item["image"].shape == (3, 64, 64) and item["factors"].shape == (14,) and item["attributes"].shape == (7,)
    assert float(item["image"].min()) >= 0 and float(item["image"].max()) <= 1


def test_counterfactual_changes_only_that_attribute():
    ds = fk.data.load("faces", "test", size=3000)
    i = 7
    item = ds[i]
    for k, name in enumerate(F.ATTRIBUTES):
        same = ds.counterfactual(i, name, int(item["attributes"][k]))
        assert torch.equal(same, item["image"]), name  # same value: identical image
        flipped = ds.counterfactual(i, name, 1 - int(item["attributes"][k]))
        changed = (flipped - item["image"]).abs().amax(0) > 1e-6
        assert changed.any(), name
        assert changed.float().mean() < 0.2, name  # a local change, not a different face


def test_counterfactual_regions():
    ds = fk.data.load("faces", "test", size=3000)
    idx = np.arange(40)
    base = ds.images_at(idx)
    glasses = ds.counterfactual(idx, "Eyeglasses", 1)
    hat = ds.counterfactual(idx, "Wearing_Hat", 1)
    rows = lambda d: (d.abs().amax(1) > 1e-6).any(2).float().mean(0)  # noqa: E731 - changed rows
    g, h = rows(glasses - base), rows(hat - base)
    # glasses live around the eyes (rows ~24-40), the hat on top of the head (rows < 26)
    assert g[:18].sum() == 0 and g[24:40].sum() > 0
    assert h[40:].sum() == 0 and h[:20].sum() > 0


def test_generator_interface(faces_all):
    rng = np.random.default_rng(0)
    f = faces_all.sample_factors(500, rng)
    assert f.shape == (500, 14)
    assert (f[:, :7] < F.ID_SIZES).all()
    imgs = faces_all.images(f[:4])
    assert imgs.shape == (4, 3, 64, 64)
    # pixels against the palette, by hand: canonical nuisance (no shift, gain 1, no light gradient,
    # background tint 0.5), skin tone "tan" = (0.64, 0.45, 0.32); Pale_Skin moves it 60 % toward
    # (0.97, 0.92, 0.88): 0.64 + 0.6 × 0.33 = 0.838, …; the corner is the background midway
    # between (0.55, 0.65, 0.76) and (0.78, 0.72, 0.60)
    rows = np.zeros((2, 14), np.int64)
    rows[:, 1] = list(F.SKIN_TONES).index("tan")
    rows[1, 7 + F.ATTRIBUTES.index("Pale_Skin")] = 1
    img = faces_all.images(rows, nuisance=np.tile(F.CANONICAL_NUISANCE, (2, 1))).numpy()
    np.testing.assert_allclose(img[0, :, 40, 22], [0.64, 0.45, 0.32], atol=1e-6)  # cheek
    np.testing.assert_allclose(img[1, :, 40, 22], [0.838, 0.732, 0.656], atol=1e-6)
    np.testing.assert_allclose(img[:, :, 0, 0], [[0.665, 0.685, 0.68]] * 2, atol=1e-6)


def test_feature_window_holds_every_feature_pixel():
    # extreme faces: every attribute on, widest features, jitter at both ends of its range
    rng = np.random.default_rng(3)
    n = 64
    identity = np.stack([rng.integers(0, s, n) for s in F.ID_SIZES], 1)
    identity[:32, 0] = 2  # long face (largest ry → lowest mouth)
    identity[:, 4] = rng.choice([1, 2], n)
    identity[:, 6] = 2  # widest mouth
    attrs = np.ones((n, 7), np.int64)
    nuisance = F.sample_nuisance(n, rng)
    nuisance[:, 0] = np.where(np.arange(n) % 2, 2.5, -2.5)
    nuisance[:, 1] = np.where(np.arange(n) % 4 < 2, 2.5, -2.5)
    rows = torch.cat([torch.from_numpy(np.concatenate([identity, attrs], 1)).float(), torch.from_numpy(nuisance)], 1)
    torch.testing.assert_close(F._render(rows, windowed=True), F._render(rows, windowed=False), rtol=0, atol=0)
