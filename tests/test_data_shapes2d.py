import numpy as np
import torch

import factorkit as fk
from factorkit.data import shapes2d as S


def test_grid_size_and_split_partition():
    train, test = fk.data.load("shapes2d", "train"), fk.data.load("shapes2d", "test")
    assert S.NUM_IMAGES == 3 * 6 * 40 * 32 * 32 == 737_280
    assert len(train) + len(test) == S.NUM_IMAGES
    assert len(np.intersect1d(train.rows, test.rows)) == 0
    assert abs(len(test) / S.NUM_IMAGES - 0.1) < 1e-3


def test_index_factor_round_trip():
    idx = np.random.default_rng(0).integers(0, S.NUM_IMAGES, 1000)
    f = S.index_to_factors(idx)
    assert (f < np.array(S.FACTOR_SIZES)).all() and (f >= 0).all()
    np.testing.assert_array_equal(S.factors_to_index(f), idx)
    np.testing.assert_array_equal(S.index_to_factors([0, S.NUM_IMAGES - 1]), [[0] * 5, [2, 5, 39, 31, 31]])


def test_items_match_generator_and_are_deterministic():
    ds = fk.data.load("shapes2d", "test")
    item = ds[123]
    again = fk.data.load("shapes2d", "test")[123]
    assert torch.equal(item["image"], again["image"])
    assert item["image"].shape == (1, 64, 64)
    rendered = ds.images(item["factors"][None].numpy())[0]
    assert torch.equal(rendered, item["image"])


def test_antialiased_and_scale_sets_area():
    base = np.array([[0, 0, 0, 16, 16], [0, 5, 0, 16, 16]])  # square at the smallest / largest scale
    img = S.render(base)
    values = img.flatten()
    assert ((values > 0.01) & (values < 0.99)).any(), "edges should be anti-aliased"
    area = img.sum(dim=(1, 2, 3))
    expected = (2 * 0.85 * S.BASE_RADIUS * np.array([S.SCALES[0], S.SCALES[5]])) ** 2
    np.testing.assert_allclose(area.numpy(), expected, rtol=0.02)


def test_position_factors_move_the_centre_of_mass():
    rows = np.array([[1, 3, 0, x, 10] for x in (0, 10, 20, 31)])
    img = S.render(rows)[:, 0]
    xs = torch.arange(64).float() + 0.5
    com = (img.sum(1) * xs).sum(1) / img.sum((1, 2))
    assert torch.all(com[1:] > com[:-1])
    span = 64 - 2 * S.MARGIN
    np.testing.assert_allclose(com.numpy(), S.MARGIN + np.array([0, 10, 20, 31]) / 31 * span, atol=0.3)


def test_orientation_rotates_the_ellipse():
    img = S.render(np.array([[1, 5, 0, 16, 16], [1, 5, 10, 16, 16]]))[:, 0]  # 0 and 90 degrees
    # horizontal ellipse is wider than tall; rotated by 90 degrees it is taller than wide
    width = lambda m: (m.sum(0) > 0.5).sum()  # noqa: E731
    height = lambda m: (m.sum(1) > 0.5).sum()  # noqa: E731
    assert width(img[0]) > height(img[0]) and height(img[1]) > width(img[1])
