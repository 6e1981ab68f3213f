import numpy as np
import pytest
import torch

import factorkit as fk
from factorkit.data import cache, celeba
from factorkit.errors import UsageError

from .fixtures import make_celeba, make_folder, make_mnist, write_idx


def test_sklearn_digits():
    train, test = fk.data.load("sklearn-digits", "train"), fk.data.load("sklearn-digits", "test")
    assert len(train) + len(test) == 1797
    assert train.info.attribute_kind == "onehot"
    item = train[0]
    assert item["image"].shape == (1, 32, 32)
    assert item["attributes"].sum() == 1 and item["attributes"].argmax() == item["factors"][0]
    # stratified: every class holds out ~20 %
    counts = np.bincount(test.factor_array()[:, 0], minlength=10)
    assert counts.min() >= 33 and counts.max() <= 39


@pytest.mark.parametrize("compress", [False, True])
def test_mnist_idx(tmp_path, compress):
    root = make_mnist(tmp_path / "mnist", compress=compress)
    ds = fk.data.load("digits", "train", root=root)
    assert len(ds) == 40 and ds.info.image_shape == (1, 28, 28)
    item = ds[13]
    assert int(item["factors"][0]) == 3
    assert item["image"][0, 10, 2 + 2 * 3] == 1.0  # the bar sits where digit 3 puts it
    assert len(fk.data.load("digits", "test", root=root)) == 20
    assert len(fk.data.load("digits", "all", root=root)) == 60


def test_mnist_raw_subfolder_and_colored(tmp_path):
    make_mnist(tmp_path / "m" / "raw")
    ds = fk.data.load("colored-digits", "test", root=tmp_path / "m")
    batch = ds.get_batch(np.arange(20))
    assert batch["image"].shape == (20, 3, 28, 28)
    f = batch["factors"]
    assert f.shape == (20, 3)
    # strokes have the foreground colour of their factor
    from factorkit.data.mnist import FOREGROUNDS
    colours = torch.tensor(list(FOREGROUNDS.values()))
    i = 5
    stroke = batch["image"][i, :, 10, 2 + 2 * int(f[i, 0])]
    torch.testing.assert_close(stroke, colours[f[i, 1]], atol=1e-6, rtol=0)


def test_mnist_errors_name_the_file(tmp_path):
    root = make_mnist(tmp_path / "m")
    (root / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(UsageError, match="t10k-labels-idx1-ubyte.*expected layout"):
        fk.data.load("digits", "test", root=root)
    data = (root / "train-images-idx3-ubyte").read_bytes()
    (root / "train-images-idx3-ubyte").write_bytes(data[:-100])
    with pytest.raises(UsageError, match="train-images-idx3-ubyte: truncated"):
        fk.data.load("digits", "train", root=root)
    (root / "train-images-idx3-ubyte").write_bytes(b"hello world")
    with pytest.raises(UsageError, match="bad magic"):
        fk.data.load("digits", "train", root=root)
    with pytest.raises(UsageError, match="--data-root"):
        fk.data.load("digits", "train")


def test_celeba_layout_crops_and_cache(tmp_path, monkeypatch):
    root = make_celeba(tmp_path / "celeba")
    train = fk.data.load("celeba", "train", root=root)
    assert len(train) == 8 and len(fk.data.load("celeba", "test", root=root)) == 2
    assert len(fk.data.load("celeba", "valid", root=root)) == 2
    assert train.info.attributes[31] == "Smiling" and len(train.info.factors) == 40
    item = train[0]
    assert item["image"].shape == (3, 64, 64)
    smiling = item["attributes"][31] == 1
    centre = item["image"][:, 32, 32] * 255
    expected = torch.tensor([200.0, 150, 100] if smiling else [60.0, 120, 200])
    assert (centre - expected).abs().max() < 6  # the cdnet crop lies inside the coloured box
    fit = fk.data.load("celeba", "train", root=root, crop="fit")
    assert not torch.equal(fit[0]["image"], item["image"])  # fit keeps the dark border
    assert float(fit[0]["image"][:, 2, 32].max()) < 0.3
    # the decoded cache is reused: a second load decodes nothing
    monkeypatch.setattr(celeba, "decode", lambda *a, **k: (_ for _ in ()).throw(AssertionError("decoded again")))
    again = fk.data.load("celeba", "train", root=root)
    assert torch.equal(again[0]["image"], item["image"])
    assert list((root / ".factorkit-cache").glob("celeba-cdnet-64-*.u8"))


def test_celeba_malformed(tmp_path):
    root = make_celeba(tmp_path / "c")
    lines = (root / "list_attr_celeba.txt").read_text().splitlines()
    (root / "list_attr_celeba.txt").write_text("\n".join(lines[:-2]) + "\n")
    with pytest.raises(UsageError, match="list_attr_celeba.txt: header says 12 rows"):
        fk.data.load("celeba", "train", root=root)
    (root / "list_attr_celeba.txt").unlink()
    with pytest.raises(UsageError, match="missing file .*list_attr_celeba.txt; expected layout"):
        fk.data.load("celeba", "train", root=root)
    root2 = make_celeba(tmp_path / "c2")
    (root2 / "img_align_celeba" / "000003.jpg").unlink()
    with pytest.raises(UsageError, match="missing image .*000003.jpg"):
        fk.data.load("celeba", "train", root=root2)


@pytest.mark.parametrize("split_column", [False, True])
def test_folder(tmp_path, split_column):
    root = make_folder(tmp_path / "f", split_column=split_column)
    train = fk.data.load("folder", "train", root=root)
    test = fk.data.load("folder", "test", root=root)
    assert len(train) + len(test) == 10
    if split_column:
        assert len(test) == 3
    assert train.info.attributes == ("Red", "Big")
    batch = train.get_batch(np.arange(len(train)))
    assert batch["image"].shape[1:] == (3, 64, 64)
    # attribute Red ↔ the corner patch is red rather than blue (after crop + resize)
    corner = batch["image"][:, :, 1, 1]
    red = batch["attributes"][:, 0] == 1
    assert (corner[red, 0] > corner[red, 2]).all() and (corner[~red, 2] > corner[~red, 0]).all()
    gray = fk.data.load("folder", "all", root=root, channels=1)
    assert gray[0]["image"].shape == (1, 64, 64)


def test_folder_errors(tmp_path):
    root = make_folder(tmp_path / "f")
    text = (root / "attributes.csv").read_text().replace("img2.png,0,1", "img2.png,0,maybe")
    (root / "attributes.csv").write_text(text)
    with pytest.raises(UsageError, match="attributes.csv:4: attribute values"):
        fk.data.load("folder", "train", root=root)
    (root / "attributes.csv").write_text("name,A\nx.png,1\n")
    with pytest.raises(UsageError, match="first column must be 'filename'"):
        fk.data.load("folder", "train", root=root)
    (root / "attributes.csv").write_text("filename,A\nnope.png,1\n")
    with pytest.raises(UsageError, match="missing image .*nope.png"):
        fk.data.load("folder", "train", root=root)


def test_cache_falls_back_when_root_is_read_only(tmp_path, monkeypatch):
    root = tmp_path / "ro"
    root.mkdir()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    real_mkdir = type(root).mkdir

    def deny(self, *a, **k):
        if self.name == ".factorkit-cache":
            raise PermissionError("read-only")
        return real_mkdir(self, *a, **k)

    monkeypatch.setattr(type(root), "mkdir", deny)
    d = cache.cache_dir(root)
    assert str(d).startswith(str(tmp_path / "xdg"))


def test_write_idx_roundtrip(tmp_path):
    from factorkit.data.mnist import read_idx

    arr = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    np.testing.assert_array_equal(read_idx(write_idx(tmp_path / "x", arr)), arr)
    np.testing.assert_array_equal(read_idx(write_idx(tmp_path / "y", arr, compress=True)), arr)
