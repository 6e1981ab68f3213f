import math

import numpy as np
import pytest
import torch

import factorkit as fk
from factorkit.errors import UnsupportedOperation, UsageError
from factorkit.models.mddae import MddAE
from factorkit.nn import dcov2, xcov


def dcov2_loops(a, b):
    n = len(a)
    A = [[math.dist(a[i], a[j]) for j in range(n)] for i in range(n)]
    B = [[math.dist(b[i], b[j]) for j in range(n)] for i in range(n)]

    def centre(M):
        row = [sum(r) / n for r in M]
        col = [sum(M[i][j] for i in range(n)) / n for j in range(n)]
        tot = sum(row) / n
        return [[M[i][j] - row[i] - col[j] + tot for j in range(n)] for i in range(n)]

    A, B = centre(A), centre(B)
    return sum(A[i][j] * B[i][j] for i in range(n) for j in range(n)) / n**2


def xcov_loops(a, b):
    n, p, q = len(a), len(a[0]), len(b[0])
    ma = [sum(a[k][i] for k in range(n)) / n for i in range(p)]
    mb = [sum(b[k][j] for k in range(n)) / n for j in range(q)]
    return 0.5 * sum((sum((a[k][i] - ma[i]) * (b[k][j] - mb[j]) for k in range(n)) / n) ** 2 for i in range(p) for j in range(q))


def test_dcov2_and_xcov_equal_double_loops():
    g = torch.Generator().manual_seed(0)
    for n, p, q in ((7, 3, 2), (12, 1, 5)):
        a, b = torch.randn(n, p, generator=g, dtype=torch.float64), torch.randn(n, q, generator=g, dtype=torch.float64)
        assert float(dcov2(a, b)) == pytest.approx(dcov2_loops(a.tolist(), b.tolist()), rel=1e-5)
        assert float(xcov(a, b)) == pytest.approx(xcov_loops(a.tolist(), b.tolist()), rel=1e-5)


def test_dcov2_zero_for_constant_and_finite_gradient_on_coinciding_rows():
    b = torch.randn(10, 3)
    assert float(dcov2(torch.ones(10, 2), b)) == 0.0
    a = torch.randn(10, 2)
    a[3] = a[4]  # two coinciding rows: sqrt(0) would have an infinite derivative
    a.requires_grad_(True)
    dcov2(a, b).backward()
    assert torch.isfinite(a.grad).all()


def test_dcov2_independent_shrinks_dependent_does_not():
    # V-statistic: for independent samples E[dCov²_N] = O(1/N); for dependent ones it converges
    # to the population value (> 0), here for Y = X₁² which is dependent yet uncorrelated.
    g = torch.Generator().manual_seed(1)
    indep, dep = [], []
    for n in (200, 800, 3200):
        x = torch.randn(n, 2, generator=g)
        y = torch.randn(n, 2, generator=g)
        indep.append(float(dcov2(x, y)))
        dep.append(float(dcov2(x, x[:, :1] ** 2)))
    assert indep[2] < indep[1] < indep[0] and indep[2] < indep[0] / 8  # ~1/N
    assert dep[2] > 0.8 * dep[1] and dep[2] > 50 * indep[2]  # settles at a positive value
    # XCov misses the uncorrelated dependence that dCov sees
    x = torch.randn(800, 1, generator=g)
    assert float(xcov(x, x**2)) < 0.02 < float(dcov2(x, x**2))


@pytest.fixture(scope="module")
def faces():
    return fk.data.load("faces", "train", size=2000)


def tiny(name, ds, **kw):
    torch.manual_seed(0)
    return fk.models.build(name, ds, conv=(8, 8, 16, 16), fc=(32,), z_dim=6, dropout=0.0, **kw)


def test_variants_are_switches_of_one_model(faces):
    expected = {"mddae": ("soft", "dcov", True), "mddae-xcov": ("soft", "xcov", True), "disae": ("label", "none", False),
                "disae-xcov": ("label", "xcov", False), "mddae-ae": ("none", "none", False)}
    for name, (inp, dec, msssim) in expected.items():
        m = fk.models.build(name, faces)
        assert isinstance(m, MddAE) and type(m).train_step is MddAE.train_step
        assert (m.config.decoder_input, m.config.decorrelation, m.config.ms_ssim) == (inp, dec, msssim), name
    assert fk.models.build("mddae-ae", faces).config.beta == 0.0


def test_loss_decreases(faces):
    model = tiny("mddae", faces, lr=2e-3)
    opt = model.configure_optimizers()
    from factorkit.train.distributed import Dist
    from factorkit.train.trainer import Players

    players = Players(opt, {"autoencoder": None}, Dist(), fetch=None)
    batch = faces.get_batch(np.arange(32))
    losses = [float(model.train_step(batch, s, players)["loss"].detach()) for s in range(25)]
    assert losses[-1] < 0.7 * losses[0]


def test_edit_with_own_value_is_the_reconstruction(faces):
    x = faces.images_at(np.arange(6))
    for name in ("mddae", "disae"):
        model = tiny(name, faces)
        model.eval()
        y = model.encode(x)["y"]
        own = model._y_for_decoder(y)[:, 0]
        torch.testing.assert_close(model.edit(x, "Smiling", own), model.reconstruct(x), rtol=0, atol=0)
    model = tiny("mddae", faces).eval()
    far = model.edit(x, "smiling", 1.7)  # case-insensitive name, value above 1
    # by hand: the encoder's code with ŷ_Smiling = 1.7, every other entry and z kept, decoded
    code = model.encode(x)
    y = model._y_for_decoder(code["y"]).clone()
    y[:, faces.info.attribute_index("Smiling")] = 1.7
    torch.testing.assert_close(far, model.decode(code.with_part("y", y)), rtol=0, atol=0)
    assert not torch.equal(far, model.reconstruct(x))


def test_unsupported_operations_raise(faces):
    model = tiny("mddae", faces).eval()
    x = faces.images_at([0, 1])
    with pytest.raises(UnsupportedOperation, match="does not support 'swap'"):
        model.swap(x, x, chunks=[0])
    with pytest.raises(UsageError, match="unknown attribute 'Beard'"):
        model.edit(x, "Beard", 1.0)
    with pytest.raises(UnsupportedOperation, match="'mddae-ae' does not support 'edit'"):
        tiny("mddae-ae", faces).edit(x, "Smiling", 1.0)
    with pytest.raises(UsageError, match="needs a dataset with attributes"):
        fk.models.build("mddae", fk.data.load("shapes2d", "test"))


def test_class_edit_swaps_with_the_argmax():
    digits = fk.data.load("sklearn-digits")
    torch.manual_seed(0)
    model = fk.models.build("mddae", digits, conv=(8, 16), fc=(32,), z_dim=4).eval()
    x = digits.images_at(np.arange(5))
    y = model.encode(x)["y"]
    edited_code = model.encode(x)
    target = "digit_3"
    out = model.edit(x, target, 1.0)
    assert out.shape == x.shape
    # the decoder saw ŷ with entries 3 and argmax exchanged: reproduce it by hand
    yy = y.clone()
    rows = torch.arange(5)
    top = yy.argmax(1)
    a, b = yy[rows, top].clone(), yy[rows, 3].clone()
    yy[rows, top], yy[rows, 3] = b, a
    torch.testing.assert_close(out, model.decode(edited_code.with_part("y", yy)))
    assert torch.allclose(yy.sum(1), torch.ones(5))
    with pytest.raises(UsageError, match="value=1"):
        model.edit(x, target, 0.0)
