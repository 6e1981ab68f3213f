"""IRS, the unsupervised scores, downstream, InfoMEC and MED: exact values on hand-built inputs
(issue 21, must-show 1), and the continuous-factor branches of MIG, SAP and DCI."""

import math
from itertools import product

import numpy as np
import pytest
from sklearn.metrics import mutual_info_score

from factorkit.errors import UsageError
from factorkit.metrics import arrays, information
from factorkit.metrics import downstream_task as downstream
from factorkit.metrics import factors as F
from factorkit.metrics import robustness as irs
from factorkit.metrics import unsupervised_scores as unsupervised


def full_grid(*sizes):
    """Every combination of the factor values once: factors exactly independent in the sample."""
    return np.array(list(product(*(range(s) for s in sizes))), dtype=np.int64)


# --- IRS ------------------------------------------------------------------------------------------


def test_irs_identity_is_one_and_constant_is_zero():
    f = full_grid(4, 5, 3)
    codes = f[:, [2, 0, 1]] * np.array([3.0, -0.5, 2.0]) + 7.0  # permuted, scaled, shifted identity
    assert irs.irs(codes, f)["irs"] == pytest.approx(1.0, abs=1e-12)
    out = irs.irs(np.full((len(f), 3), 4.2), f)
    assert out == {"irs": 0.0, "irs.num_active_dims": 0}


def test_irs_hand_computed_value_and_active_dims_is_a_count():
    # one code, one factor: within each group |z − mean| = (1, 0, 1), 0.99-quantile 1; the
    # largest deviation from the overall mean 6 is 6, so IRS = 1 − 1/6
    z = np.array([0.0, 1.0, 2.0, 10.0, 11.0, 12.0])
    g = np.array([0, 0, 0, 1, 1, 1])
    assert irs.irs(z[:, None], g[:, None])["irs"] == pytest.approx(5 / 6, abs=1e-12)
    # a constant column is dropped; the count is of active codes (the reference sums their values)
    codes = np.stack([z + 100.0, np.full(6, 9.0)], 1)
    out = irs.irs(codes, g[:, None])
    assert out["irs.num_active_dims"] == 1 and out["irs"] == pytest.approx(5 / 6, abs=1e-12)


# --- unsupervised ---------------------------------------------------------------------------------


def test_gaussian_total_correlation_closed_forms():
    a, b, c = 2.0, 0.5, 0.6
    cov = np.array([[a, c], [c, b]])
    assert unsupervised.gaussian_total_correlation(cov) == pytest.approx(-0.5 * math.log(1 - c * c / (a * b)), abs=1e-12)
    assert unsupervised.gaussian_total_correlation(np.diag([3.0, 0.2, 1.0])) == pytest.approx(0.0, abs=1e-12)
    # Wasserstein: unit diagonal, so the matrix under the root is Σ itself, eigenvalues 1 ± ρ
    rho = 0.6
    unit = np.array([[1.0, rho], [rho, 1.0]])
    expected = 4.0 - 2.0 * (math.sqrt(1 + rho) + math.sqrt(1 - rho))
    assert unsupervised.gaussian_wasserstein_correlation(unit) == pytest.approx(expected, abs=1e-10)
    assert unsupervised.gaussian_wasserstein_correlation(np.diag([3.0, 0.2])) == pytest.approx(0.0, abs=1e-10)


def test_unsupervised_on_samples():
    rng = np.random.default_rng(0)
    independent = rng.normal(size=(200_000, 4)) * np.array([1.0, 2.0, 0.5, 3.0])
    out = unsupervised.unsupervised(independent)
    assert abs(out["gaussian_total_correlation"]) < 1e-3
    assert out["mutual_info_score"] < 5e-3
    cov = np.array([[1.0, 0.8], [0.8, 1.0]])
    correlated = rng.multivariate_normal([0, 0], cov, size=200_000)
    got = unsupervised.unsupervised(correlated)
    assert got["gaussian_total_correlation"] == pytest.approx(-0.5 * math.log(1 - 0.64), abs=0.01)
    # a duplicated code: the pairwise MI is the binned code's entropy
    z = rng.normal(size=5000)
    disc = F.histogram_discretize(np.stack([z, z, np.random.default_rng(1).normal(size=5000)], 1))
    pairs = [mutual_info_score(disc[:, i], disc[:, j]) for i in range(3) for j in range(3) if i != j]
    dup = unsupervised.unsupervised(np.stack([z, z, np.random.default_rng(1).normal(size=5000)], 1))
    assert dup["mutual_info_score"] == pytest.approx(np.mean(pairs), abs=1e-12)
    h = F.entropy_discrete(disc[:, :1])[0]
    assert pairs[0] == pytest.approx(h, abs=1e-12)  # the duplicated pair's MI is the binned code's entropy
    # constant codes are dropped, and said so
    assert unsupervised.unsupervised(np.stack([z, np.ones(5000), -z + 0.1 * rng.normal(size=5000)], 1))[
        "num_active_dims"] == 2


# --- downstream -----------------------------------------------------------------------------------


def test_downstream_accuracy_on_separable_factors_is_one():
    rng = np.random.default_rng(0)
    f, ft = rng.integers(0, 3, (1200, 3)), rng.integers(0, 3, (400, 3))
    codes, codes_t = f * 2.0 + 0.05 * rng.normal(size=f.shape), ft * 2.0 + 0.05 * rng.normal(size=ft.shape)
    out = downstream.downstream(codes, f, codes_t, ft, sizes=(100, 1000, 10000))
    for p in ("logistic", "gbt"):
        for n in (100, 1000):
            assert out[f"{p}.{n}.mean_test"] == 1.0 and out[f"{p}.{n}.min_test"] == 1.0
    assert out["skipped"] == [10000]  # more rows asked than there are: named, not silently shrunk
    noise = downstream.downstream(rng.normal(size=f.shape), f, rng.normal(size=ft.shape), ft, sizes=(1000,))
    assert noise["logistic.1000.mean_test"] < 0.45  # chance is 1/3


def test_downstream_single_valued_training_factor():
    f = np.zeros((50, 1), dtype=int)
    ft = np.array([[0], [1], [0], [0]])
    out = downstream.downstream(np.arange(50.0)[:, None], f, np.zeros((4, 1)), ft, sizes=(10,), predictors=("gbt",))
    assert out["gbt.10.mean_test"] == 0.75  # predicts the one value it saw
    with pytest.raises(UsageError, match="≥ 5"):
        downstream.downstream(np.zeros((50, 1)), f, np.zeros((4, 1)), ft, sizes=(3,))


# --- InfoMEC --------------------------------------------------------------------------------------


def test_infom_infoc_hand_computed():
    nmi = np.array([[1.0, 0.5], [0.0, 0.5]])  # factors × codes
    infom, infoc = information.infom_infoc(nmi, np.array([True, True]))
    # codes: max/sum = 1 and 0.5 → mean 0.75 → (0.75 − 1/2)/(1 − 1/2) = 0.5
    # factors: 1/1.5 and 0.5/0.5 → mean 5/6 → (5/6 − 1/2)/(1/2) = 2/3
    assert infom == pytest.approx(0.5) and infoc == pytest.approx(2 / 3)
    # an inactive code is left out; a code with no information counts as evenly spread
    assert information.infom_infoc(np.array([[1.0, 0.0, 0.3], [0.0, 1.0, 0.3]]), np.array([True, True, False])) == \
        pytest.approx((1.0, 1.0))
    assert information.infom_infoc(np.array([[1.0, 0.0], [0.0, 0.0]]), np.array([True, True]))[0] == pytest.approx(0.5)


def test_infom_is_one_for_a_permuted_identity_and_lower_for_a_mixed_code():
    f = full_grid(5, 4, 3)
    perm = f[:, [1, 2, 0]].astype(float)
    exact = information.infomec(perm, f, estimator="discrete")
    assert exact["infom"] == pytest.approx(1.0, abs=1e-12) and exact["infoc"] == pytest.approx(1.0, abs=1e-12)
    knn = information.infomec(perm + 1e-3 * np.random.default_rng(0).normal(size=perm.shape), f)
    assert knn["infom"] > 0.97 and knn["infoc"] > 0.97
    mixed = np.stack([f[:, 0] + f[:, 1], f[:, 0] - f[:, 1], f[:, 2]], 1).astype(float)
    for estimator in ("discrete", "knn", "histogram"):
        assert information.infomec(mixed, f, estimator=estimator)["infom"] < 0.8


def test_infoe_separable_and_uninformative():
    rng = np.random.default_rng(0)
    f = rng.integers(0, 3, (2000, 2))
    assert information.infoe(f * 3.0 + 0.01 * rng.normal(size=f.shape), f)["infoe"] > 0.97
    assert information.infoe(rng.normal(size=(2000, 2)), f)["infoe"] < 0.02
    # continuous factors: the R² of a linear read-out, exactly 1 for a linear code
    y = rng.normal(size=(2000, 2))
    assert information.infoe(y @ np.array([[1.0, 2.0], [-1.0, 0.5]]), y, continuous=True)["infoe"] == \
        pytest.approx(1.0, abs=1e-9)


# --- MED ------------------------------------------------------------------------------------------


def test_med_on_a_hand_made_mi_matrix_equals_the_dci_formula():
    mi = np.array([[2.0, 0.0], [1.0, 1.0]])  # codes × factors
    # columns divided by their sums: R = [[2/3, 0], [1/3, 1]]
    # D: code 0 → 1; code 1 → 1 − H2(1/4, 3/4); weights 1/3, 2/3
    h = -(0.25 * math.log2(0.25) + 0.75 * math.log2(0.75))
    d = 1 / 3 + 2 / 3 * (1 - h)
    # C: factor 0 → 1 − H2(2/3, 1/3); factor 1 → 1; weights 1/2, 1/2
    c = 0.5 * (1 - -(2 / 3 * math.log2(2 / 3) + 1 / 3 * math.log2(1 / 3))) + 0.5
    out = information.med_from_mi(mi)
    assert out["disentanglement"] == pytest.approx(d, abs=1e-9)
    assert out["completeness"] == pytest.approx(c, abs=1e-9)
    ref = F.dci_from_importance(mi / mi.sum(0))
    assert out == pytest.approx(ref, abs=1e-12)


def test_topk_med_keeps_k_codes_per_factor():
    mi = np.array([[1.0, 0.0], [0.9, 0.0], [0.0, 1.0], [0.5, 0.5]])
    assert information.topk_rows(information.med_importance(mi), 1).tolist() == [0, 2]
    assert information.topk_rows(information.med_importance(mi), 2).tolist() == [0, 1, 2, 3]
    top = information.med_from_mi(mi, topk=1)
    assert top["top1_disentanglement"] == pytest.approx(1.0, abs=1e-6)
    assert top["top1_completeness"] == pytest.approx(1.0, abs=1e-6)
    assert top["disentanglement"] < 0.9


def test_med_on_codes():
    f, ft = full_grid(4, 3, 5), full_grid(4, 3, 5)
    out = information.med(f[:, [2, 0, 1]].astype(float), f, ft[:, [2, 0, 1]].astype(float), ft)
    assert out["disentanglement"] == pytest.approx(1.0, abs=1e-6) and out["completeness"] == pytest.approx(1.0, abs=1e-6)


# --- continuous factors ---------------------------------------------------------------------------


def test_continuous_factors_mig_dci_sap():
    rng = np.random.default_rng(0)
    y, yt = rng.uniform(size=(3000, 3)), rng.uniform(size=(1000, 3))
    codes, codes_t = y[:, [1, 2, 0]] * 2.0, yt[:, [1, 2, 0]] * 2.0
    assert F.mig(codes, y, continuous=True)["mig"] > 0.85
    assert F.mig(rng.normal(size=(3000, 3)), y, continuous=True)["mig"] < 0.05
    d = F.dci(codes, y, codes_t, yt, continuous=True)
    assert d["dci.disentanglement"] > 0.95 and d["dci.completeness"] > 0.95 and d["dci.r2_test"] > 0.98
    assert "dci.informativeness_test" not in d  # an R², named as one
    assert F.sap(codes, y, codes_t, yt, continuous=True)["sap"] > 0.9
    with pytest.raises(UsageError, match="classifiers only"):
        F.dci(codes, y, codes_t, yt, backend="fast", continuous=True)


def test_score_refuses_continuous_factors_where_the_definition_needs_classes():
    rng = np.random.default_rng(0)
    y = rng.uniform(size=(300, 2))
    for name in ("modularity", "med", "infom", "downstream"):
        with pytest.raises(UsageError, match=f"metric '{name}' needs discrete factors"):
            arrays.score(y, y, metrics=[name], floors=False)
    out = arrays.score(y, y, metrics=["mig", "sap", "dci", "irs", "infoe"], floors=False)
    assert out["factor_kind"] == "continuous" and out["metrics"]["infoe"] == pytest.approx(1.0, abs=1e-9)
    assert set(arrays.applicable("continuous")) == {"mig", "sap", "dci", "irs", "unsupervised", "infoe"}
    # the same values as classes, on request
    assert arrays.score(np.round(y * 3), np.round(y * 3) / 3, metrics=["modularity"], floors=False,
                        kind="discrete")["factor_kind"] == "discrete"
    with pytest.raises(UsageError, match="sap.continuous=false"):
        arrays.score(y, y, metrics=["sap"], params={"sap": {"continuous": "false"}}, floors=False)


def test_med_infoe_unsupervised_on_celeba(tmp_path):
    """CelebA has no generator (its 40 attributes are its factors): MED, InfoE and the unsupervised
    scores apply, the interventional ones draw pairs from the attributes."""
    import torch

    import factorkit as fk
    from factorkit.metrics import registry as R

    from .fixtures import make_celeba

    root = make_celeba(tmp_path / "celeba", n=40)
    train, test = fk.data.load("celeba", "train", root=root), fk.data.load("celeba", "test", root=root)
    torch.manual_seed(0)
    model = fk.models.build("ae", train, latent_dim=4)
    assert not test.info.has_generator and {"med", "infom", "infoc", "infoe", "unsupervised", "irs"} <= set(
        R.applicable(model, test.info))
    record = fk.evaluate(model, test, metrics=["unsupervised", "med", "infoe"], train_dataset=train,
                         settings=fk.metrics.Settings(floors=False))
    m = record["metrics"]
    assert 0 <= m["med.disentanglement"] <= 1 and 0 <= m["med.informativeness_train"] <= 1
    # the importance matrix has one column per attribute
    assert np.asarray(record["details"]["med.importance"]).shape == (4, len(test.info.attributes))
    assert m["unsupervised.num_active_dims"] == 4


def test_progress_callbacks_count_the_declared_units():
    """Every metric slower than a second reports progress; the bar's total is what it counts."""
    rng = np.random.default_rng(0)
    f, ft = rng.integers(0, 3, (300, 3)), rng.integers(0, 3, (100, 3))
    c, ct = f + 0.1 * rng.normal(size=f.shape), ft + 0.1 * rng.normal(size=ft.shape)
    calls = []

    def tick(n=1):
        calls.append(n)

    cases = [
        (lambda: F.sap(c, f, ct, ft, progress=tick), c.shape[1]),
        (lambda: F.dci(c, f, ct, ft, backend="fast", progress=tick), f.shape[1]),
        (lambda: F.modularity(c, f, ct, ft, progress=tick), f.shape[1]),
        (lambda: information.med(c, f, ct, ft, progress=tick), f.shape[1]),
        (lambda: information.infomec(c, f, progress=tick), f.shape[1]),
        (lambda: information.infoe(c, f, progress=tick), f.shape[1]),
        (lambda: downstream.downstream(c, f, ct, ft, sizes=(10, 100, 1000), progress=tick),
         downstream.total_steps((10, 100, 1000), downstream.PREDICTORS, 3, 300)),
    ]
    for run, expected in cases:
        calls.clear()
        run()
        assert sum(calls) == expected
