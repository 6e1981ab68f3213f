"""Measured floors (issue 15): every score beside the same metric on Gaussian codes, same rows."""

import json

import numpy as np
import pytest
import torch

import factorkit as fk
from factorkit.cli import main
from factorkit.metrics import evaluate as EV
from factorkit.metrics import factors as F
from factorkit.metrics import floors as FL


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "ae"
    ds = fk.data.load("shapes2d", "train")
    torch.manual_seed(0)
    model = fk.models.build("ae", ds, latent_dim=6)
    fk.train(model, ds, steps=20, out=out, batch_size=32, num_workers=0, progress=False)
    return out


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FACTORKIT_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache" / "floors"


def _context(model, n_train, n_test, seed=0):
    test, train = fk.data.load("shapes2d", "test"), fk.data.load("shapes2d", "train")
    ctx = EV.Context(model, test, train, EV.Settings(num_train=n_train, num_test=n_test, seed=seed), False)
    ctx.encode_rows()
    return ctx


def test_floor_is_the_metric_on_gaussian_codes_of_the_runs_shape_and_rows(run):
    model = fk.load(run)
    record = EV.evaluate(model, fk.data.load("shapes2d", "test"), metrics=["mig", "modularity", "sap"],
                         settings=EV.Settings(num_train=800, num_test=400))
    ctx = _context(model, 800, 400)
    assert ctx.c_tr.shape == (800, 6)
    # the reference: Gaussian codes drawn independently here, scored by the metric cores directly
    g_tr = np.random.default_rng([0, FL._SALT, 0]).standard_normal((800, 6))
    g_te = np.random.default_rng([0, FL._SALT, 1]).standard_normal((400, 6))
    fl = record["floors"]
    assert fl["mig"] == pytest.approx(F.mig(g_tr, ctx.f_tr)["mig"], abs=1e-12)
    mod = F.modularity(g_tr, ctx.f_tr, g_te, ctx.f_te)
    assert fl["modularity"] == pytest.approx(mod["modularity"], abs=1e-12)
    assert fl["explicitness_test"] == pytest.approx(mod["explicitness_test"], abs=1e-12)
    assert fl["sap"] == pytest.approx(F.sap(g_tr, ctx.f_tr, g_te, ctx.f_te)["sap"], abs=1e-12)
    assert set(record["floor_kind"].values()) == {"random-codes"}
    # what the issue found: random codes are far from 0 on modularity, near 0 on MIG
    assert fl["modularity"] > 0.5 and fl["mig"] < 0.05
    # every score of these metrics has its floor beside it
    assert set(fl) == set(record["metrics"])


def test_floor_depends_on_the_code_shape_and_rows():
    # why one printed constant cannot be right: 2 factors read by 2 or by 10 random codes
    f = np.random.default_rng(1).integers(0, 5, size=(1000, 2))
    narrow = F.modularity(FL.random_codes((800, 2), 0), f[:800], FL.random_codes((200, 2), 0, 1), f[800:])
    wide = F.modularity(FL.random_codes((800, 10), 0), f[:800], FL.random_codes((200, 10), 0, 1), f[800:])
    assert wide["modularity"] - narrow["modularity"] > 0.1  # measured 0.165 vs 0.286


def test_floors_are_cached_per_rows_and_params_and_a_damaged_entry_is_recomputed(run, cache):
    model = fk.load(run)
    test = fk.data.load("shapes2d", "test")
    first = EV.evaluate(model, test, metrics=["mig"], settings=EV.Settings(num_train=500, num_test=200))
    files = sorted(cache.glob("mig-*.json"))
    assert len(files) == 1
    entry = json.loads(files[0].read_text())
    assert entry["ident"]["shape"] == [[500, 6], [200, 6]] and entry["floors"]["mig"] == first["floors"]["mig"]
    # a planted value is read back: the second run does not recompute
    entry["floors"]["mig"] = 0.123
    files[0].write_text(json.dumps(entry))
    again = EV.evaluate(model, test, metrics=["mig"], settings=EV.Settings(num_train=500, num_test=200))
    assert again["floors"]["mig"] == 0.123
    # other rows, other parameters: new entries
    EV.evaluate(model, test, metrics=["mig"], settings=EV.Settings(num_train=600, num_test=200))
    EV.evaluate(model, test, metrics=["mig"], settings=EV.Settings(num_train=500, num_test=200,
                                                                    params={"mig": {"num_bins": 5}}))
    assert len(list(cache.glob("mig-*.json"))) == 3
    # a damaged entry is recomputed and rewritten
    files[0].write_text("{not json")
    fixed = EV.evaluate(model, test, metrics=["mig"], settings=EV.Settings(num_train=500, num_test=200))
    assert fixed["floors"]["mig"] == first["floors"]["mig"]
    assert json.loads(files[0].read_text())["floors"]["mig"] == first["floors"]["mig"]


def test_interventional_floor_is_chance_without_rendering(run, monkeypatch):
    model = fk.load(run)
    test = fk.data.load("shapes2d", "test")
    ctx = _context(model, 100, 100)
    monkeypatch.setattr(type(test), "images", lambda *a, **k: pytest.fail("a random-code floor rendered images"))
    spec = fk.metrics.registry.METRICS["higgins"]
    params = {"num_train": 1000, "num_eval": 1000, "batch_size": 16}
    floor = FL.random_code_floor(ctx, spec, params)
    chance = 1 / len(test.info.factors)
    assert floor["higgins.chance"] == chance
    assert abs(floor["higgins"] - chance) < 0.06, floor  # 1,000 eval points: std of chance ≈ 0.013


def test_edit_floors_are_the_majority_rate_and_the_plain_reconstruction():
    attrs = np.array([[1, 0], [1, 1], [1, 0], [0, 0]])
    assert FL.majority_rate(attrs).tolist() == [0.75, 0.75]


def test_cli_table_and_metrics_json_show_the_measured_floor(run, capsys):
    assert main(["evaluate", str(run), "--metrics", "modularity,psnr", "--num-train", "500", "--num-test", "200"]) == 0
    out = capsys.readouterr().out
    record = json.loads((run / "metrics.json").read_text())
    floor = record["floors"]["modularity"]
    assert record["floor_kind"]["modularity"] == "random-codes" and "psnr" not in record["floors"]
    line = next(ln for ln in out.splitlines() if "modularity" in ln)
    assert f"{floor:.4f} random codes" in line, out


def test_edit_success_on_classes_edits_other_classes_into_the_class_and_floors_at_its_rate():
    """One-hot attributes (digits): a class edit makes images of *other* classes this class (no
    "set to 0", which mddAE refuses); the floor is the class's own rate."""
    from factorkit.metrics import editing as E

    test = fk.data.load("sklearn-digits", "test")
    k = test.info.attribute_index("digit_3")
    calls = []

    class Model:
        def edit(self, x, attribute, value):
            calls.append(value)
            if value != 1.0:
                raise AssertionError("a class edit was asked to set a class to 0")
            return torch.full_like(x, 0.5)

    class Judge:  # reads every edited image as class k
        def probabilities(self, x):
            p = torch.zeros(len(x), len(test.info.attributes))
            p[:, k] = 1.0
            return p

    out = E.edit_success(Model(), test, "digit_3", Judge())
    attrs = test.attribute_array()
    assert out["n"] == int((attrs[:, k] == 0).sum()) and out["attr"] == 1.0 and "not_attr" not in out
    assert set(calls) == {1.0}
    ctx = type("C", (), {"dataset": test, "info": test.info, "attributes": lambda self: ["digit_3"]})()
    spec = fk.metrics.registry.METRICS["edit-success"]
    floors, kind = FL.edit_floors(ctx, spec, {"edit-success.digit_3.attr": 1.0})
    assert kind == "majority" and floors["edit-success.digit_3.attr"] == pytest.approx(attrs[:, k].mean())


def test_edit_intensity_needs_binary_attributes():
    spec = fk.metrics.registry.METRICS["edit-intensity"]
    model = type("M", (), {"supports": lambda self, op: True, "operations": {"edit"}})()
    digits, faces = fk.data.load("sklearn-digits", "test").info, fk.data.load("faces", "test", size=200).info
    assert "classes (one-hot)" in spec.applies(model, digits) and spec.applies(model, faces) is None
