import json

import numpy as np
import pytest
import torch

import factorkit as fk
from factorkit.cli import main
from factorkit.errors import UsageError
from factorkit.metrics import evaluate as EV


def test_compute_by_name_matches_direct_call():
    rng = np.random.default_rng(0)
    f = np.stack([rng.integers(0, 3, 2000), rng.integers(0, 4, 2000)], 1)
    codes = f + 0.3 * rng.normal(size=(2000, 2))
    assert fk.metrics.compute("mig", codes, f) == fk.metrics.mig(codes, f)
    perm = np.random.default_rng(0).permutation(2000)  # the documented seeded 80/20 split, disjoint
    tr, te = np.sort(perm[:1600]), np.sort(perm[1600:])
    split = codes[tr], f[tr], codes[te], f[te]
    assert fk.metrics.compute("sap", codes, f, seed=0) == {"sap": fk.metrics.sap(*split, seed=0)["sap"]}
    with pytest.raises(UsageError, match="needs a model or dataset"):
        fk.metrics.compute("higgins", codes, f)


@pytest.fixture(scope="module")
def ae_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "ae"
    ds = fk.data.load("faces", "train", size=3000)
    torch.manual_seed(0)
    model = fk.models.build("ae", ds, latent_dim=8)
    fk.train(model, ds, steps=30, out=out, batch_size=32, num_workers=0, progress=False)
    return out


def test_evaluate_cli_writes_metrics_json(ae_run, capsys):
    code = main(["evaluate", str(ae_run), "--json", "--num-train", "600", "--num-test", "300", "--fast"])
    out, err = capsys.readouterr()
    assert code == 0, err
    record = json.loads((ae_run / "metrics.json").read_text())
    assert record["model"] == "ae" and record["data"] == "faces" and record["step"] == 30
    m = record["metrics"]
    assert json.loads(out)["metrics"] == m
    assert set(record["seconds"]) >= {"encode", "mig", "dci", "images"}
    # every score recomputed here, independently of the driver: the same rows, the metric cores
    # (or numpy for the image scores) called directly
    model = fk.load(ae_run)
    cfg = model.run_config
    test, train = (fk.data.load(cfg.data_name, s, options=cfg.data) for s in ("test", "train"))
    ctx = EV.Context(model, test, train, EV.Settings(num_train=600, num_test=300, fast=True), False)
    ctx.encode_rows()
    assert m["mig"] == pytest.approx(fk.metrics.mig(ctx.c_tr, ctx.f_tr)["mig"], abs=1e-12)
    assert m["sap"] == pytest.approx(fk.metrics.sap(ctx.c_tr, ctx.f_tr, ctx.c_te, ctx.f_te)["sap"], abs=1e-12)
    dci = fk.metrics.dci(ctx.c_tr, ctx.f_tr, ctx.c_te, ctx.f_te, backend="fast")
    mod = fk.metrics.modularity(ctx.c_tr, ctx.f_tr, ctx.c_te, ctx.f_te)
    for k in ("dci.disentanglement", "dci.completeness", "dci.informativeness_test"):
        assert m[k] == pytest.approx(dci[k], abs=1e-12), k
    assert m["modularity"] == pytest.approx(mod["modularity"], abs=1e-12)
    idx = EV.rows(len(test), 1000, 2)  # the image rows: 1,000 test images, seed + 2
    x = test.images_at(idx).double().numpy()
    with torch.no_grad():
        r = model.reconstruct(test.images_at(idx)).double().clamp(0, 1).numpy()
    mse = ((x - r) ** 2).reshape(len(idx), -1).mean(1)
    assert m["mse"] == pytest.approx(mse.mean(), rel=1e-5)
    assert m["psnr"] == pytest.approx(np.mean(10 * np.log10(1 / mse)), rel=1e-5)
    assert m["rmse"] == pytest.approx(np.sqrt(mse).mean(), rel=1e-5)


def test_edit_metrics_refused_for_model_that_cannot_edit(ae_run, capsys):
    code = main(["evaluate", str(ae_run), "--metrics", "edit-success"])
    _, err = capsys.readouterr()
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "metric 'edit-success' does not apply to model 'ae' on faces: the model cannot edit" in err
    code = main(["evaluate", str(ae_run), "--metrics", "bogus"])
    assert code == 2 and "unknown metric 'bogus'" in capsys.readouterr()[1]


def test_param_keys_and_metric_names_are_checked_against_the_registry(ae_run, capsys):
    cases = [
        (["--param", "mig.foo=1"], "--param mig.foo: unknown key; valid mig keys: mig.num_bins"),
        (["--param", "bogus.x=1"], "unknown metric 'bogus'; valid: mig, sap, dci, modularity, irs, unsupervised, med"),
        (["--param", "mig.num_bins=abc"], "--param mig.num_bins=abc: expected an integer"),
        (["--param", "counterfactual.x=1"], "valid counterfactual keys: (none: it takes no parameters)"),
        (["--metrics", "mig,nope"], "unknown metric 'nope'; valid: mig, sap, dci"),
        # ranges and choices declared with each parameter (found by the fuzz test: was a numpy ValueError)
        (["--param", "mig.num_bins=0"], "--param mig.num_bins=0: must be ≥ 2"),
        (["--param", "dci.backend=exact"], "--param dci.backend=exact: expected one of 'auto', 'vectorised', 'fast'"),
        (["--param", "nn-map.num_queries=0"], "--param nn-map.num_queries=0: must be ≥ 1"),
        (["--param", "edit-intensity.C=0"], "--param edit-intensity.C=0.0: must be > 0"),
    ]
    for extra, message in cases:
        assert main(["evaluate", str(ae_run), *extra]) == 2, extra
        err = capsys.readouterr().err
        assert len(err.strip().splitlines()) == 1 and message in err, (extra, err)


def test_declared_params_reach_the_metric_core(ae_run):
    model = fk.load(ae_run)
    test = fk.data.load("faces", "test")
    default = EV.evaluate(model, test, metrics=["mig"], settings=EV.Settings(num_train=600, num_test=300))
    coarse = EV.evaluate(model, test, metrics=["mig"],
                         settings=EV.Settings(num_train=600, num_test=300, params={"mig": {"num_bins": 2}}))
    ctx = EV.Context(model, test, fk.data.load("faces", "train"), EV.Settings(num_train=600, num_test=300), False)
    ctx.encode_rows()
    assert default["metrics"]["mig"] == pytest.approx(fk.metrics.mig(ctx.c_tr, ctx.f_tr, num_bins=20)["mig"])
    assert coarse["metrics"]["mig"] == pytest.approx(fk.metrics.mig(ctx.c_tr, ctx.f_tr, num_bins=2)["mig"])
    assert coarse["metrics"]["mig"] != default["metrics"]["mig"]


def test_registry_is_the_one_list(capsys):
    from factorkit.metrics import registry as R

    assert main(["metrics", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == list(R.ALL_METRICS) == list(fk.metrics.ALL_METRICS)
    for m in R.METRICS.values():
        assert set(m.needs) <= set(R.NEEDS) and m.floor in R.FLOORS, m.name
    # applicability and its reasons come from the declared needs
    info = fk.data.describe("shapes2d")
    ae = fk.models.build("ae", info)
    assert "edit-success" not in R.applicable(ae, info) and "mig" in R.applicable(ae, info)
    assert R.METRICS["counterfactual"].applies(ae, info).startswith("the model cannot edit")
    mdd = fk.models.build("mddae", fk.data.describe("sklearn-digits"))
    assert R.METRICS["counterfactual"].applies(mdd, fk.data.describe("sklearn-digits")) == \
        "the dataset has no counterfactual renders (only faces does)"
    assert R.defaults(ae, info) == ["mig", "sap", "dci", "modularity", "irs", "unsupervised", "med", "infom", "infoc",
                                    "infoe", "nn-map", "mse", "rmse", "psnr", "ssim", "ms-ssim"]
