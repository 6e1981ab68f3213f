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


def test_prerendered_cache_equals_live_renders_and_is_reused(tmp_path, monkeypatch):
    monkeypatch.setenv("FACTORKIT_CACHE", str(tmp_path))
    live = fk.data.load("faces", "train", size=300)
    stale = tmp_path / "renders" / "faces-s0-n300-c0.5-t0.1-train-0123456789abcdef.u8"  # an older renderer's
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"old")
    rows = np.array([17, 3, 250, 3])  # any order, repeats allowed
    want = live.get_batch(rows)["image"]
    assert not live.prerender(build=False)  # no cache yet: stays live
    assert live.prerender()
    got = live.get_batch(rows)
    assert got["image"].dtype == torch.float32 and (got["image"] - want).abs().max() <= 1 / 510 + 1e-6
    assert torch.equal(got["factors"], live.get_batch(rows)["factors"])
    files = list((tmp_path / "renders").glob("*.u8"))
    assert not stale.exists() and len(files) == 1 and files[0].stat().st_size == len(live) * 3 * 64 * 64
    # a second dataset with the same options reads the file; other options or split get their own
    calls = []
    monkeypatch.setattr(F, "render", lambda *a: calls.append(1) or F.torch.zeros(len(a[0]), 3, 64, 64))
    again = fk.data.load("faces", "train", size=300)
    assert again.prerender(build=False) and not calls
    assert torch.equal(again.get_batch(rows)["image"], got["image"])
    fk.data.load("faces", "test", size=300).prerender()
    fk.data.load("faces", "train", size=300, seed=1).prerender()
    assert len(list((tmp_path / "renders").glob("*.u8"))) == 3


def test_trainer_prerenders_only_when_the_run_draws_the_split(tmp_path, monkeypatch):
    monkeypatch.setenv("FACTORKIT_CACHE", str(tmp_path / "cache"))
    ds = fk.data.load("faces", "train", size=200)
    model = fk.models.build("ae", ds, latent_dim=4)
    fk.train(model, ds, steps=2, batch_size=8, out=tmp_path / "short", num_workers=0, progress=False)
    assert ds._images is None  # 16 draws < 180 images: rendered live
    fk.train(model, ds, steps=30, batch_size=8, out=tmp_path / "long", num_workers=0, progress=False)
    assert ds._images is not None and len(list((tmp_path / "cache" / "renders").glob("*.u8"))) == 1
    ds2 = fk.data.load("faces", "train", size=200)
    fk.train(model, ds2, steps=30, batch_size=8, out=tmp_path / "off", num_workers=0, prerender=False, progress=False)
    assert ds2._images is None
