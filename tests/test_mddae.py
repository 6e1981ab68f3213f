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


def test_dcor2_is_dcov2_normalised_and_scale_invariant():
    from factorkit.nn.dependence import dcor2

    g = torch.Generator().manual_seed(3)
    a, b = torch.randn(9, 3, generator=g, dtype=torch.float64), torch.randn(9, 2, generator=g, dtype=torch.float64)
    la, lb = a.tolist(), b.tolist()
    want = dcov2_loops(la, lb) / math.sqrt(dcov2_loops(la, la) * dcov2_loops(lb, lb))
    assert float(dcor2(a, b)) == pytest.approx(want, rel=1e-6)
    # dCov² shrinks with z's scale (the cheap way out of eq. 14 the paper's γ = 5 takes); dCor² does not
    assert float(dcov2(a, 0.01 * b)) == pytest.approx(0.01 * float(dcov2(a, b)), rel=1e-6)
    assert float(dcor2(a, 0.01 * b)) == pytest.approx(float(dcor2(a, b)), rel=1e-6)
    assert float(dcor2(a, 2 * a + 1)) == pytest.approx(1.0, rel=1e-6)  # a linear copy: fully dependent
    assert float(dcor2(torch.ones(9, 2), b)) == 0.0


def test_dcor_switch_is_the_loss(faces):
    model = fk.models.build("mddae", faces, decorrelation="dcor")
    from factorkit.nn.dependence import dcor2

    y, z = torch.rand(16, 7), torch.randn(16, 5)
    assert float(model.decorrelation_loss(y, z)) == pytest.approx(float(dcor2(y, z)))
    assert float(model.decorrelation_loss(y, 0.01 * z)) == pytest.approx(float(dcor2(y, z)), rel=1e-5)


def dcov2_u_loops(a, b):
    n = len(a)

    def ucentre(x):
        D = [[math.dist(x[i], x[j]) for j in range(n)] for i in range(n)]
        row = [sum(r) for r in D]
        tot = sum(row)
        return [[0.0 if i == j else D[i][j] - row[i] / (n - 2) - row[j] / (n - 2) + tot / ((n - 1) * (n - 2))
                 for j in range(n)] for i in range(n)]

    A, B = ucentre(a), ucentre(b)
    return sum(A[i][j] * B[i][j] for i in range(n) for j in range(n) if i != j) / (n * (n - 3))


def test_dcov2_unbiased_equals_loops_and_has_no_floor_for_independent_batches():
    from factorkit.nn.dependence import dcov2_unbiased

    g = torch.Generator().manual_seed(4)
    a, b = torch.randn(8, 3, generator=g, dtype=torch.float64), torch.randn(8, 4, generator=g, dtype=torch.float64)
    assert float(dcov2_unbiased(a, b)) == pytest.approx(dcov2_u_loops(a.tolist(), b.tolist()), rel=1e-6)
    # independent batches of 32 (ŷ-like 7-d, z-like 32-d): eq. 14's V-statistic has a floor far above
    # 0 that shrinks only with z's scale, which is why γ·dCov² collapses z; the U-statistic's mean is 0
    u = torch.stack([dcov2_unbiased(torch.randn(32, 7, generator=g), torch.randn(32, 32, generator=g)) for _ in range(100)])
    v = torch.stack([dcov2(torch.randn(32, 7, generator=g), torch.randn(32, 32, generator=g)) for _ in range(100)])
    assert abs(float(u.mean())) < 3 * float(u.std()) / 10 and float(v.mean()) > 0.5
    y = torch.randn(32, 2, generator=g)
    assert float(dcov2_unbiased(y, y ** 2 + 0.1 * torch.randn(32, 2, generator=g))) > 0.05  # dependence still shows


def test_departures_from_the_paper_are_switches_off_by_default(faces):
    c = MddAE.Config()
    assert (c.decorrelation, c.dec_grad, c.z_norm, c.lr_schedule) == ("dcov", "both", False, "constant")
    for preset in MddAE.presets(faces.info).values():
        assert not {"model.dec_grad", "model.z_norm", "model.lr_schedule"} & set(preset)
        assert preset.get("model.decorrelation", "dcov") == "dcov"


def test_dec_grad_z_detaches_y_hat_and_z_norm_standardises_z(faces):
    y = torch.rand(16, 7, requires_grad=True)
    z = torch.randn(16, 5, requires_grad=True)
    for dec_grad, y_moves in (("both", True), ("z", False)):
        model = fk.models.build("mddae", faces, dec_grad=dec_grad, decorrelation="dcov-u")
        y.grad = z.grad = None
        model.decorrelation_loss(y, z).backward()
        assert (y.grad is not None and float(y.grad.abs().sum()) > 0) == y_moves
        assert float(z.grad.abs().sum()) > 0
    model = tiny("mddae", faces, z_norm=True)
    model.train()
    _, z, _ = model._split(model.encoder(faces.images_at(np.arange(32))))
    assert torch.allclose(z.mean(0), torch.zeros(z.shape[1]), atol=1e-5)
    assert torch.allclose(z.var(0, unbiased=False), torch.ones(z.shape[1]), atol=1e-3)
    assert "z_bn.running_var" in model.state_dict()  # test-time statistics travel with the weights
    assert not any(k.startswith("z_bn") for k in tiny("mddae", faces).state_dict())  # off: old runs' weights load


def test_cosine_schedule_ends_at_zero(faces):
    model = tiny("mddae", faces, lr_schedule="cosine", lr=1e-3)
    opts = model.configure_optimizers()
    sched = model.configure_schedulers(opts, 10)["autoencoder"]
    lrs = []
    for _ in range(10):
        lrs.append(opts["autoencoder"].param_groups[0]["lr"])
        opts["autoencoder"].step()
        sched.step()
    assert lrs[0] == pytest.approx(1e-3) and lrs[5] == pytest.approx(5e-4)
    assert opts["autoencoder"].param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)
    assert tiny("mddae", faces).configure_schedulers(opts, 10) == {}
