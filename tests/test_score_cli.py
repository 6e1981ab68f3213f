"""``factorkit score`` and ``fk.metrics.score`` (issue 21, must-show 4): every applicable metric on
plain arrays with its floor; bad tables exit 2 with one line."""

import json

import numpy as np
import pytest

import factorkit as fk
from factorkit.cli import main
from factorkit.errors import UsageError
from factorkit.metrics import arrays
from factorkit.metrics import registry as R


@pytest.fixture(scope="module")
def table(tmp_path_factory):
    d = tmp_path_factory.mktemp("score")
    rng = np.random.default_rng(0)
    f = rng.integers(0, 3, (240, 2))
    codes = np.concatenate([f + 0.1 * rng.normal(size=f.shape), rng.normal(size=(240, 1))], 1)
    np.savez(d / "t.npz", codes=codes, factors=f)
    return d, codes, f


def run(capsys, *argv):
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def test_score_npz_prints_every_applicable_metric_with_its_floor(table, capsys, tmp_path):
    d, codes, f = table
    rc, out, err = run(capsys, "score", str(d / "t.npz"), "--json", "--param", "downstream.sizes=10,100",
                       "--out", str(tmp_path / "s.json"))
    assert rc == 0, err
    got = json.loads(out)
    names = arrays.applicable("discrete")
    assert names == [m for m in R.METRICS if R.METRICS[m].arrays]  # discrete factors: every array metric
    for name in names:  # each metric filed at least one score, and every score has its floor
        assert any(k == name or k.startswith(f"{name}.") or (name == "modularity" and k.startswith("explicitness"))
                   for k in got["metrics"]), name
    assert set(got["floors"]) == set(got["metrics"])
    assert got["metrics"]["dci.disentanglement"] > 0.9 > got["floors"]["dci.disentanglement"]
    # the same numbers as the Python API, and the --out file holds them too
    api = fk.metrics.score(codes, f, params={"downstream": {"sizes": "10,100"}})
    assert api["metrics"] == pytest.approx(got["metrics"], nan_ok=True)
    saved = json.loads((tmp_path / "s.json").read_text())
    assert saved["metrics"] == pytest.approx(got["metrics"], nan_ok=True)
    assert np.asarray(saved["details"]["dci.importance"]).shape == (3, 2)  # matrices as nested lists, not text


def test_score_table_output_and_two_files(table, capsys, tmp_path):
    d, codes, f = table
    np.save(tmp_path / "c.npy", codes)
    header = "size,shade\n" + "\n".join(f"{a},{b}" for a, b in f)
    (tmp_path / "f.csv").write_text(header)
    rc, out, err = run(capsys, "score", str(tmp_path / "c.npy"), str(tmp_path / "f.csv"), "--metrics", "mig,irs")
    assert rc == 0, err
    assert "mig" in out and "irs" in out and "floor" in out and "dci" not in out


def bad(capsys, *argv):
    rc, out, err = run(capsys, "score", *argv)
    lines = err.strip().splitlines()
    assert rc == 2 and len(lines) == 1, err
    return lines[0]


def test_score_bad_tables_exit_2_with_one_line(table, capsys, tmp_path):
    d, codes, f = table
    np.save(tmp_path / "c.npy", codes)
    np.save(tmp_path / "f_short.npy", f[:-1])
    assert "240 rows and factors 239" in bad(capsys, str(tmp_path / "c.npy"), str(tmp_path / "f_short.npy"))
    nan = codes.copy()
    nan[7, 1] = np.nan
    np.save(tmp_path / "nan.npy", nan)
    np.save(tmp_path / "f.npy", f)
    assert "NaN" in bad(capsys, str(tmp_path / "nan.npy"), str(tmp_path / "f.npy"))
    np.save(tmp_path / "c1.npy", codes[:, 0])
    assert "must be 2-D" in bad(capsys, str(tmp_path / "c1.npy"), str(tmp_path / "f.npy"))
    np.savez(tmp_path / "wrong.npz", z=codes, y=f)
    assert "no array named codes or factors" in bad(capsys, str(tmp_path / "wrong.npz"))
    assert "give FACTORS too" in bad(capsys, str(tmp_path / "c.npy"))
    (tmp_path / "c.txt").write_text("1,2\n")
    assert "unknown format .txt" in bad(capsys, str(tmp_path / "c.txt"), str(tmp_path / "f.npy"))
    (tmp_path / "bad.csv").write_text("a,b\n1,2\n3,x\n")
    assert "line 3: 'x' is not a number" in bad(capsys, str(tmp_path / "c.npy"), str(tmp_path / "bad.csv"))
    assert "needs a model or a dataset" in bad(capsys, str(d / "t.npz"), "--metrics", "higgins")
    assert "unknown metric" in bad(capsys, str(d / "t.npz"), "--metrics", "mgi")
    assert "no such file" in bad(capsys, str(tmp_path / "missing.npz"))
    y = np.random.default_rng(0).uniform(size=(240, 2))
    np.save(tmp_path / "y.npy", y)
    assert "needs discrete factors" in bad(capsys, str(tmp_path / "c.npy"), str(tmp_path / "y.npy"),
                                           "--metrics", "modularity")
    assert "unknown key" in bad(capsys, str(d / "t.npz"), "--param", "irs.bins=3")


def test_compute_runs_every_array_metric_through_the_registry(table):
    _, codes, f = table
    assert fk.metrics.compute("irs", codes, f) == {k: v for k, v in fk.metrics.irs(codes, f).items()
                                                   if not k.startswith("_")}
    # train-only metrics score every row of a single table; the rest a seeded disjoint 80/20 split
    cut = int(round(len(codes) * 0.8))
    perm = np.random.default_rng(0).permutation(len(codes))
    tr, te = np.sort(perm[:cut]), np.sort(perm[cut:])
    med = fk.metrics.med(codes[tr], f[tr], codes[te], f[te])
    assert fk.metrics.compute("med", codes, f)["med.disentanglement"] == med["disentanglement"]
    with pytest.raises(UsageError, match="needs a model"):
        fk.metrics.compute("nn-map", codes, f)
