"""Fuzzing the command line (issue 15): hypothesis builds argument lists for train, evaluate,
edit and score from valid and broken pieces; no run may end in a traceback, and every exit code is 0 or 2.

The default suite tries ``FACTORKIT_FUZZ_EXAMPLES`` (default 12) lists per command; the longer
run is ``python benchmarks/fuzz_cli.py`` (it sets the budget and records what was seen in
``FACTORKIT_FUZZ_LOG``).
"""

from __future__ import annotations

import json
import os
from collections import Counter

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

import factorkit as fk
from factorkit.cli import main

pytestmark = pytest.mark.fuzz

EXAMPLES = int(os.environ.get("FACTORKIT_FUZZ_EXAMPLES", "12"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=EXAMPLES <= 12,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
SEEN: dict[str, Counter] = {"train": Counter(), "evaluate": Counter(), "edit": Counter(), "score": Counter()}



def mostly(valid: list[str], broken: list[str]):
    """Three in four draws valid, so that most argument lists get past the parser into real work."""
    return st.sampled_from(valid * (3 * max(1, len(broken)) // max(1, len(valid)) + 1) + broken)


INTS = mostly(["0", "1", "2", "7"], ["-5", "-1", "x", "", "1e3", "2.5"])
SMALL = mostly(["1", "2", "8"], ["-4", "0", "x"])
JUNK = st.sampled_from(["", "-", "--", "=", "nan", "inf", "-inf", "1e309", "é", " ", "a=b=c", "--bogus"])


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    base = tmp_path_factory.mktemp("fuzz")
    runs = {}
    for name in ("ae", "mddae"):
        ds = fk.data.load("sklearn-digits", "train")
        runs[name] = base / name
        fk.train(fk.models.build(name, ds), ds, steps=2, out=runs[name], batch_size=8, num_workers=0, progress=False)
    Image.fromarray((np.random.default_rng(0).random((8, 8)) * 255).astype(np.uint8)).save(base / "in.png")
    Image.new("RGB", (40, 30), "red").save(base / "big.png")
    (base / "text.png").write_text("not an image")
    (base / "file.txt").write_text("x")
    (base / "emptydir").mkdir()
    return base, runs


def _paths(base, runs):
    return mostly([str(runs["ae"]), str(runs["mddae"])],
                  [str(base / "emptydir"), str(base / "missing"), str(base / "file.txt"), "-", ""])


def _images(base):
    return mostly([str(base / "in.png"), str(base / "big.png")],
                  [str(base / "text.png"), str(base), str(base / "missing.png"), "-", ""])


def _run(kind: str, argv: list[str], capsys) -> None:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse --help / --version
        code = exc.code or 0
    out, err = capsys.readouterr()
    SEEN[kind][code] += 1
    assert "Traceback" not in err and "Traceback" not in out, (argv, err)
    assert code in (0, 2), (argv, code, err)
    if code == 2:  # one error line, last; before it only progress lines ("evaluating …", "  mig …")
        lines = err.rstrip("\n").splitlines()
        errors = [ln for ln in lines if ln.startswith("factorkit: error: ")]
        assert len(errors) == 1 and lines[-1] == errors[0] and errors[0].strip() == errors[0], (argv, err)


def _flags(draw, pool: dict) -> list[str]:
    argv: list[str] = []
    for flag in draw(st.lists(st.sampled_from(sorted(pool)), max_size=5, unique=True)):
        value = pool[flag]
        argv += [flag] if value is None else [flag, draw(value)]
    if draw(st.integers(0, 5)) == 0:
        argv.insert(draw(st.integers(0, len(argv))), draw(JUNK))
    return argv


@given(data=st.data())
@FUZZ
def test_fuzz_train(world, tmp_path_factory, capsys, data):
    base, _ = world
    out = str(tmp_path_factory.mktemp("t") / "run")
    draw = data.draw
    model = draw(mostly(["ae", "betavae", "mddae", "mixing"], ["nosuch", ""]))
    dataset = draw(mostly(["sklearn-digits", "shapes2d"], ["folder", "digits", "nosuch"]))
    pool = {
        "--batch-size": SMALL, "--seed": INTS, "--device": mostly(["cpu", "auto"], ["cuda", "tpu"]),
        "--preset": mostly(["fast", "paper"], ["slow"]), "--checkpoint-every": INTS, "--num-workers": mostly(["0"], ["-1", "x"]),
        "--data-root": st.sampled_from([str(base / "file.txt"), str(base / "emptydir"), str(base / "missing")]),
        "--set": mostly(["model.beta=2", "train.steps=1", "model.z_dim=3", "model.latent_dim=3", "train.log_every=1",
                         "model.lr=0.01", "train.amp=off"],
                        ["train.log_every=0", "model.lr=-1", "model.latent_dim=0", "train.keep_checkpoints=0",
                         "model.nope=1", "bogus", "data.size=x", "train.amp=maybe", "model.dropout=1"]),
        "--resume": None, "--quiet": None,
    }
    argv = ["train", model, "--data", dataset, "--out", out, "--steps", draw(mostly(["1", "2"], ["-5", "0", "x"])),
            *_flags(draw, pool)]
    if "--batch-size" not in argv:
        argv += ["--batch-size", "8"]
    if "--num-workers" not in argv:
        argv += ["--num-workers", "0"]
    _run("train", argv, capsys)


@given(data=st.data())
@FUZZ
def test_fuzz_evaluate(world, capsys, data):
    base, runs = world
    draw = data.draw
    pool = {
        "--fast": None, "--json": None, "--seed": INTS,
        "--attributes": mostly(["digit_0", "digit_1,digit_2"], ["", "nope", "1"]),
        "--param": mostly(["mig.num_bins=5", "dci.backend=fast", "sap.continuous=true", "nn-map.num_queries=10",
                           "modularity.num_bins=1", "dci.bins=2", "higgins.num_train=20", "higgins.num_eval=10"],
                          ["mig.num_bins=0", "mig.num_bins=-3", "mig.num_bins=x", "dci.backend=exact", "dci.backend=nope",
                           "sap.continuous=maybe", "nn-map.num_queries=0", "mig=3", "nn-map.query_batch=0"]),
    }
    argv = ["evaluate", draw(_paths(base, runs)),
            "--metrics", draw(mostly(["mig", "sap", "dci", "modularity", "nn-map", "psnr,mse", "mig,dci", "ssim,ms-ssim",
                                      "attr-projection", "edit-success", "higgins", "factorvae", "edit-intensity",
                                      "irs,unsupervised", "med", "infom,infoc", "infoe", "downstream"],
                                     ["bogus", "", ",", "counterfactual"])),
            "--num-train", draw(mostly(["1", "2", "3", "40"], ["-5", "0", "x"])),
            "--num-test", draw(mostly(["1", "2", "30"], ["-1", "0", "x"])), *_flags(draw, pool)]
    _run("evaluate", argv, capsys)


@given(data=st.data())
@FUZZ
def test_fuzz_edit(world, tmp_path_factory, capsys, data):
    base, runs = world
    draw = data.draw
    out_dir = tmp_path_factory.mktemp("e")
    pool = {
        "--attribute": mostly(["digit_0", "digit_3"], ["Smiling", "", "9"]),
        "--value": mostly(["1.5", "-2", "0", "1"], ["nan", "inf", "1e309", "x", ""]),
        "--swap-with": _images(base), "--chunks": mostly(["0", "0,1"], ["1,0,1", "99", "-1", "x", "", ","]),
        "--traverse": mostly(["0", "3"], ["-1", "999", "x"]), "--steps": INTS,
    }
    op = draw(st.sampled_from([["--attribute", "digit_1", "--value", "1"], ["--traverse", "1"], []]))
    argv = ["edit", draw(_paths(base, runs)), "--image", draw(_images(base)),
            "--out", draw(mostly([str(out_dir / "o.png")], [str(out_dir), str(out_dir / "o.jpg"), "-",
                                                           str(base / "file.txt" / "o.png")])), *op, *_flags(draw, pool)]
    _run("edit", argv, capsys)


@pytest.fixture(scope="module")
def tables(tmp_path_factory):
    base = tmp_path_factory.mktemp("tables")
    rng = np.random.default_rng(0)
    f = rng.integers(0, 3, (60, 2))
    np.savez(base / "ok.npz", codes=f + 0.1 * rng.normal(size=f.shape), factors=f)
    np.savez(base / "tiny.npz", codes=rng.normal(size=(10, 3)), factors=rng.integers(0, 2, (10, 2)))
    np.savez(base / "constant.npz", codes=np.ones((30, 2)), factors=np.zeros((30, 1)))
    np.savez(base / "real.npz", codes=rng.normal(size=(40, 2)), factors=rng.uniform(size=(40, 2)))
    np.save(base / "codes.npy", rng.normal(size=(60, 4)))
    np.save(base / "f.npy", f)
    np.save(base / "codes1d.npy", rng.normal(size=60))
    np.save(base / "obj.npy", np.array(["a", "b"]))
    (base / "f.csv").write_text("a,b\n" + "\n".join(f"{x},{y}" for x, y in f))
    (base / "bad.csv").write_text("1,2\n3\n")
    (base / "junk.npz").write_bytes(b"PK not really")
    return base


@given(data=st.data())
@FUZZ
def test_fuzz_score(tables, tmp_path_factory, capsys, data):
    base = tables
    draw = data.draw
    out_dir = tmp_path_factory.mktemp("s")
    files = draw(mostly([[str(base / "ok.npz")], [str(base / "tiny.npz")], [str(base / "constant.npz")],
                         [str(base / "real.npz")], [str(base / "codes.npy"), str(base / "f.npy")],
                         [str(base / "codes.npy"), str(base / "f.csv")]],
                        [[str(base / "codes1d.npy"), str(base / "f.npy")], [str(base / "obj.npy"), str(base / "f.npy")],
                         [str(base / "codes.npy"), str(base / "bad.csv")], [str(base / "junk.npz")],
                         [str(base / "codes.npy")], [str(base)], [str(base / "missing.npz")], ["-"], [""]]))
    pool = {
        "--metrics": mostly(["mig", "irs,unsupervised", "med", "infom,infoc,infoe", "sap,dci", "modularity"],
                            ["bogus", "", ",", "higgins", "nn-map"]),
        "--param": mostly(["mig.num_bins=5", "downstream.sizes=10", "infom.estimator=histogram", "med.topk=2",
                           "irs.diff_quantile=0.5", "dci.backend=fast"],
                          ["irs.diff_quantile=2", "downstream.sizes=3", "med.topk=-1", "infom.estimator=x",
                           "downstream.predictors=svm", "x.y=1", "mig"]),
        "--factor-kind": mostly(["auto", "discrete", "continuous"], ["maybe"]),
        "--test-fraction": mostly(["0.2", "0.5"], ["0", "1", "-1", "x", "nan"]),
        "--seed": INTS, "--fast": None, "--json": None, "--no-floors": None,
        "--out": mostly([str(out_dir / "s.json")], [str(out_dir), str(out_dir / "s.png"), "-"]),
    }
    argv = ["score", *files, *_flags(draw, pool)]
    if "--metrics" not in argv and draw(st.booleans()):
        argv += ["--metrics", "mig,irs,unsupervised,infom"]  # keep most draws quick
    _run("score", argv, capsys)


def teardown_module(module) -> None:
    path = os.environ.get("FACTORKIT_FUZZ_LOG")
    if path:
        with open(path, "a") as fh:
            fh.write(json.dumps({k: dict(v) for k, v in SEEN.items()}) + "\n")
