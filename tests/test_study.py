"""``factorkit study`` (issue 23): spec validation, a tiny study under local Ray, resume that trains
nothing, failures recorded, and claim verdicts."""

import csv
import hashlib

import numpy as np
import pytest
import torch
import yaml
from scipy.stats import ttest_rel

from factorkit.cli import main
from factorkit.errors import UsageError
from factorkit.study import claims as C
from factorkit.study import spec as S

TINY = {
    "name": "tiny", "data": "sklearn-digits", "steps": 12, "seeds": [0, 1], "metrics": ["mig", "psnr"],
    "runs": [{"method": "ae", "set": {"train.batch_size": 16, "train.num_workers": 0}},
             {"method": "betavae", "label": "bvae-b4",
              "set": {"model.beta": 4, "train.batch_size": 16, "train.num_workers": 0}}],
    "claims": ["ae.psnr >= bvae-b4.psnr - 0.5"],
}


def write_spec(path, **changes):
    spec = {**TINY, **changes}
    path.write_text(yaml.safe_dump(spec))
    return path


def bad(capsys, tmp_path, **changes):
    spec = write_spec(tmp_path / "s.yaml", **changes)
    code = main(["study", str(spec), "--out", str(tmp_path / "out"), "--no-ray", "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert not (tmp_path / "out").exists()  # nothing ran, nothing was written
    return err[0]


def test_bad_specs_exit_2_naming_the_key_and_nothing_runs(capsys, tmp_path):
    assert "study spec colour: unknown key" in bad(capsys, tmp_path, colour="red")
    assert "unknown model 'nosuch'" in bad(capsys, tmp_path, runs=[{"method": "nosuch"}])
    assert "model.nope" in bad(capsys, tmp_path, runs=[{"method": "ae", "set": {"model.nope": 1}}])
    assert "steps must be int" in bad(capsys, tmp_path, steps="many")
    assert "unknown metric 'mgi'" in bad(capsys, tmp_path, metrics=["mgi"])
    assert "metric 'edit-success' does not apply to model 'ae'" in bad(capsys, tmp_path, metrics=["edit-success"])
    assert "'nobody.psnr' names no entry" in bad(capsys, tmp_path, claims=["nobody.psnr > ae.psnr"])
    assert "runs[0].colour: unknown key" in bad(capsys, tmp_path, runs=[{"method": "ae", "colour": 1}])
    assert "model.beta" in bad(capsys, tmp_path, runs=[{"method": "betavae", "set": {"model.beta": "big"}}])
    assert "unknown dataset" in bad(capsys, tmp_path, data=["sklearn-digits", "nowhere"])
    assert "evaluate.rows: unknown key; valid evaluate keys: num_train" in bad(capsys, tmp_path, evaluate={"rows": 9})
    assert "evaluate.fast: fast must be bool, got str" in bad(capsys, tmp_path, evaluate={"fast": "yes"})
    assert "evaluate.num_test: 0: must be ≥ 1" in bad(capsys, tmp_path, evaluate={"num_test": 0})
    assert "evaluate.params: mig.bins: unknown key; valid mig keys: mig.num_bins" in bad(
        capsys, tmp_path, evaluate={"params": {"mig": {"bins": 5}}})
    assert "evaluate.params: expected {metric: {key: value}}" in bad(capsys, tmp_path, evaluate={"params": {"mig": 5}})


def test_run_names_are_stable_and_grids_expand():
    study = S.parse({**TINY, "runs": [{"method": "betavae", "label": "b", "grid": {"model.beta": [1, 4]}}]})
    assert [e.label for e in study.entries] == ["b[model.beta=1]", "b[model.beta=4]"]
    assert S.run_name("betavae", "faces", 2, {"model.beta": 4}) == S.run_name("betavae", "faces", 2, {"model.beta": 4})
    assert S.run_name("betavae", "faces", 2, {"model.beta": 4}) != S.run_name("betavae", "faces", 2, {"model.beta": 5})
    assert S.run_name("ae", "faces", 0, {}) == "ae-faces-s0"


def test_claim_parsing_and_verdicts_on_a_hand_built_table():
    labels = ["mddae", "mddae-xcov", "mix.c"]
    c = C.parse_claim("mddae.psnr >= mddae-xcov.psnr - 0.5", labels)
    assert (c.left, c.left_metric, c.op, c.right, c.right_metric, c.margin) == \
        ("mddae", "psnr", ">=", "mddae-xcov", "psnr", -0.5)
    d = C.parse_claim("mix.c.nn-map.mean > mddae.nn-map.mean", labels)
    assert (d.left, d.left_metric, d.right_metric) == ("mix.c", "nn-map.mean", "nn-map.mean")
    table = {"mddae": {0: {"psnr": 30.0}, 1: {"psnr": 29.0}, 2: {"psnr": 28.0}},
             "mddae-xcov": {0: {"psnr": 30.2}, 1: {"psnr": 30.0}, 2: {"psnr": 27.0}}}
    v = C.verdict(c, table)  # differences −0.2, −1.0, +1.0 → holds on seeds 0 and 2
    assert v["verdict"] == "mixed" and v["held"] == 2 and v["n"] == 3
    assert v["delta_mean"] == pytest.approx(-0.2 / 3) and v["text"].startswith("mixed (2/3 seeds, Δ = -0.0667")
    assert C.verdict(C.parse_claim("mddae.psnr > mddae-xcov.psnr + 5", labels), table)["verdict"] == "does not hold"
    assert C.verdict(C.parse_claim("mddae.psnr < mddae-xcov.psnr + 5", labels), table)["text"].startswith("holds (3/3")
    assert C.verdict(C.parse_claim("mddae.ssim > mddae-xcov.ssim", labels), table)["verdict"] == "no data"
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=6) + 1, rng.normal(size=6)
    big = {"mddae": {s: {"m": float(a[s])} for s in range(6)}, "mddae-xcov": {s: {"m": float(b[s])} for s in range(6)}}
    p = C.verdict(C.parse_claim("mddae.m > mddae-xcov.m", labels), big)["p_value"]
    assert p == pytest.approx(ttest_rel(a, b).pvalue)
    for broken in ("mddae.psnr", "mddae.psnr >= ", "mddae.psnr => mddae-xcov.psnr", "mddae >= mddae-xcov"):
        with pytest.raises(UsageError):
            C.parse_claim(broken, labels)


def _weights(out):
    return {p.parent.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted((out / "runs").glob("*/checkpoints/*.safetensors"))}


@pytest.fixture(scope="module")
def ray_study(tmp_path_factory):
    pytest.importorskip("ray")
    base = tmp_path_factory.mktemp("study")
    spec = write_spec(base / "tiny.yaml")
    code = main(["study", str(spec), "--out", str(base / "out"), "--quiet"])
    return base, spec, code


def test_tiny_study_under_local_ray(ray_study):
    base, _, code = ray_study
    assert code == 0
    rows = list(csv.DictReader((base / "out" / "results.csv").open()))
    assert {r["method"] for r in rows} == {"ae", "betavae"} and {r["seed"] for r in rows} == {"0", "1"}
    assert {(r["method"], r["seed"], r["metric"]) for r in rows} >= {(m, s, k) for m in ("ae", "betavae")
                                                                    for s in ("0", "1") for k in ("mig", "psnr")}
    assert set(rows[0]) >= {"run", "method", "data", "seed", "metric", "value", "floor", "seconds", "model.beta"}
    summary = (base / "out" / "summary.md").read_text()
    assert "ae.psnr >= bvae-b4.psnr - 0.5" in summary and "(n=2" in summary
    # the workers of a local Ray run at the driver's priority, not Ray's default niceness of 15
    import json
    import os

    states = [json.loads(p.read_text()) for p in (base / "out" / "runs").glob("*/study.json")]
    assert len(states) == 4 and {s["niceness"] for s in states} == {os.nice(0)}
    # each run directory is an ordinary run: loadable, with its metrics.json
    import factorkit as fk

    run = next((base / "out" / "runs").iterdir())
    assert fk.load(run).name in ("ae", "betavae") and (run / "metrics.json").is_file()


def test_rerun_trains_nothing_and_equals_a_sequential_study(ray_study, tmp_path, capsys):
    base, spec, _ = ray_study
    before = _weights(base / "out")
    mtimes = {p: p.stat().st_mtime_ns for p in (base / "out" / "runs").glob("*/model.safetensors")}
    assert main(["study", str(spec), "--out", str(base / "out"), "--quiet"]) == 0
    assert _weights(base / "out") == before and before
    assert {p: p.stat().st_mtime_ns for p in mtimes} == mtimes
    # the same study run one after another in-process gives exactly the same results
    assert main(["study", str(spec), "--out", str(tmp_path / "seq"), "--no-ray", "--quiet"]) == 0
    ray_rows = (base / "out" / "results.csv").read_text().splitlines()
    seq_rows = (tmp_path / "seq" / "results.csv").read_text().splitlines()
    strip = [lambda rows: [",".join(r.split(",")[:6]) for r in rows]]  # run … value (seconds differ)
    assert strip[0](ray_rows) == strip[0](seq_rows)


def test_changed_spec_is_refused_naming_the_runs(ray_study, tmp_path, capsys):
    base, _, _ = ray_study
    changed = write_spec(tmp_path / "more.yaml", steps=13)
    assert main(["study", str(changed), "--out", str(base / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "the spec changed 4 existing run(s)" in err and "train.steps: 12 → 13" in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA to make a run fail")
def test_a_failing_run_is_recorded_and_the_others_finish(tmp_path, capsys):
    spec = write_spec(tmp_path / "f.yaml", claims=[], runs=[
        TINY["runs"][0], {"method": "ae", "label": "on-gpu", "set": {"train.device": "cuda", "train.batch_size": 16}}])
    assert main(["study", str(spec), "--out", str(tmp_path / "out"), "--no-ray", "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "failed: ae-sklearn-digits-s0-batch_size=16_device=cuda" in err
    summary = (tmp_path / "out" / "summary.md").read_text()
    assert "2/4 runs done, 2 failed" in summary and "## Failed runs" in summary
    rows = list(csv.DictReader((tmp_path / "out" / "results.csv").open()))
    assert {r["seed"] for r in rows if r["method"] == "ae" and "device" not in r["run"]} == {"0", "1"}
    failed = next(p for p in (tmp_path / "out" / "runs").iterdir() if "cuda" in p.name)
    assert "Traceback" in (failed / "error.txt").read_text()


def test_sigkill_of_the_driver_then_rerun_equals_an_uninterrupted_study(tmp_path):
    """Killed (process group, SIGKILL) once the first run is done, mid-way through the second;
    the rerun resumes it from its checkpoint and every score equals an uninterrupted study's."""
    import json
    import os
    import signal
    import subprocess
    import sys
    import time

    spec = write_spec(tmp_path / "k.yaml", steps=300, seeds=[0], claims=[], cpus_per_run=2, runs=[
        {"method": "ae", "set": {"train.batch_size": 16, "train.num_workers": 0, "train.checkpoint_every": 20}},
        {"method": "betavae", "set": {"train.batch_size": 16, "train.num_workers": 0, "train.checkpoint_every": 20}}])
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "factorkit", "study", str(spec), "--quiet"]
    proc = subprocess.Popen([*cmd, "--out", str(tmp_path / "killed")], env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    runs = tmp_path / "killed" / "runs"
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        states = [json.loads(p.read_text()).get("state") for p in runs.glob("*/study.json") if p.stat().st_size]
        if "done" in states:
            break
        time.sleep(0.05)
    assert proc.poll() is None, proc.stderr.read().decode()  # still running: the second run is under way
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    states = {p.parent.name: json.loads(p.read_text())["state"] for p in runs.glob("*/study.json")}
    assert sorted(states.values()) in (["done"], ["done", "running"], ["done", "resumed"])
    # a hung rerun fails the test (TimeoutExpired) instead of holding CI until its own limit
    assert subprocess.run([*cmd, "--out", str(tmp_path / "killed")], env=env, capture_output=True,
                          timeout=600).returncode == 0
    assert subprocess.run([*cmd, "--out", str(tmp_path / "whole"), "--no-ray"], env=env,
                          capture_output=True, timeout=600).returncode == 0

    def values(out):
        return [(r["run"], r["metric"], r["value"]) for r in csv.DictReader((out / "results.csv").open())]

    assert values(tmp_path / "killed") == values(tmp_path / "whole") and values(tmp_path / "whole")


def test_the_shipped_studies_validate():
    from pathlib import Path

    from factorkit.study import load

    root = Path(__file__).resolve().parents[1] / "studies"
    names = sorted(p.name for p in root.glob("*.yaml"))
    assert names == ["mddae-table1.yaml", "mixing-table2.yaml", "seed-variance.yaml", "udgan-table1.yaml"]
    for path in root.glob("*.yaml"):
        study = load(path)
        assert len(study.runs) == len(study.entries) * len(study.data) * len(study.seeds) and study.claims


def test_address_joins_a_ray_head_started_outside(tmp_path):
    """`ray start --head` on 127.0.0.1 (started and stopped here); the study joins it with --address."""
    import os
    import socket
    import subprocess
    import sys
    from pathlib import Path

    pytest.importorskip("ray")
    ray_cli = Path(sys.executable).with_name("ray")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # Ray ≥ 2.59 authenticates clients with a token: the head and the study share one (as on a cluster)
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token",
           "RAY_AUTH_TOKEN": hashlib.sha256(str(tmp_path).encode()).hexdigest()}
    start = subprocess.run([str(ray_cli), "start", "--head", f"--port={port}", "--num-cpus=2",
                            "--include-dashboard=false", "--disable-usage-stats"], capture_output=True, text=True, env=env, timeout=120)
    assert start.returncode == 0, start.stderr
    try:
        spec = write_spec(tmp_path / "a.yaml", seeds=[0], claims=[], runs=[TINY["runs"][0]])
        run = subprocess.run([sys.executable, "-m", "factorkit", "study", str(spec), "--out", str(tmp_path / "out"),
                              "--address", f"127.0.0.1:{port}", "--quiet"], capture_output=True, text=True, env=env,
                             timeout=300)
        assert run.returncode == 0, run.stderr
        rows = list(csv.DictReader((tmp_path / "out" / "results.csv").open()))
        assert {r["metric"] for r in rows} >= {"mig", "psnr"}
        # no cluster at an address: one clear line, exit 2, nothing trained
        wrong = subprocess.run([sys.executable, "-m", "factorkit", "study", str(spec), "--out", str(tmp_path / "x"),
                                "--address", "127.0.0.1:1", "--quiet"], capture_output=True, text=True, env=env,
                               timeout=300)
        assert wrong.returncode == 2 and "could not join a Ray cluster" in wrong.stderr, wrong.stderr
        assert "Traceback" not in wrong.stderr and not (tmp_path / "x").exists()
    finally:
        subprocess.run([str(ray_cli), "stop", "--force"], capture_output=True, env=env, timeout=120)


def test_report_on_a_study_directory(ray_study, capsys):
    base, _, _ = ray_study
    assert main(["report", str(base / "out")]) == 0
    page = (base / "out" / "report.html").read_text()
    assert "ae.psnr &gt;= bvae-b4.psnr - 0.5" in page and "seeds, Δ =" in page
    assert page.count("<img") >= 2 and "Spearman" in page and "+1.00" in page  # ρ(m, m) on the diagonal
    assert all(p.name in page for p in (base / "out" / "runs").iterdir())
    assert "http://" not in page and "https://" not in page  # self-contained


def test_evaluate_settings_reach_evaluate_and_a_change_rescores_without_training(tmp_path, capsys):
    import json

    spec = write_spec(tmp_path / "e.yaml", seeds=[0], claims=[], runs=[TINY["runs"][0]], metrics=["mig"],
                      evaluate={"num_train": 300, "num_test": 120, "fast": True, "params": {"mig": {"num_bins": 7}}})
    out = tmp_path / "out"
    assert main(["study", str(spec), "--out", str(out), "--no-ray", "--quiet"]) == 0
    run = next((out / "runs").iterdir())
    record = json.loads((run / "metrics.json").read_text())
    assert record["settings"]["num_train"] == 300 and record["settings"]["num_test"] == 120
    assert record["settings"]["fast"] is True and record["params"]["mig"]["num_bins"] == 7
    weights = _weights(out)
    mig = record["metrics"]["mig"]
    # other evaluation settings: scored again with them, nothing trained again
    write_spec(tmp_path / "e.yaml", seeds=[0], claims=[], runs=[TINY["runs"][0]], metrics=["mig"],
               evaluate={"num_train": 200, "num_test": 120, "fast": True})
    assert main(["study", str(spec), "--out", str(out), "--no-ray", "--quiet"]) == 0
    again = json.loads((run / "metrics.json").read_text())
    assert again["settings"]["num_train"] == 200 and again["metrics"]["mig"] != mig
    assert _weights(out) == weights


def test_without_ray_the_study_runs_in_turn_and_says_so_in_one_line(tmp_path, capsys, monkeypatch):
    from factorkit.study import runner

    monkeypatch.setattr(runner, "ray_available", lambda: False)
    spec = write_spec(tmp_path / "n.yaml", seeds=[0], claims=[], runs=[TINY["runs"][0]])
    assert main(["study", str(spec), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    err = capsys.readouterr().err
    assert err.count("Ray is not installed (pip install 'factorkit[study]'): the 1 run goes in this process") == 1
    assert main(["study", str(spec), "--out", str(tmp_path / "o2"), "--address", "127.0.0.1:1", "--quiet"]) == 2
    assert "--address needs Ray" in capsys.readouterr().err


def test_seed_against_entry_spread_and_rank_correlation_on_a_hand_built_table():
    from factorkit.study import aggregate as AG

    # A: 1, 2, 3; B: 11, 12, 13 → SS_between = 3·(5² + 5²) = 150, SS_within = 2 + 2 = 4
    s = AG.spread({"A": [1.0, 2.0, 3.0], "B": [11.0, 12.0, 13.0]})
    assert s["eta2"] == pytest.approx(150 / 154) and s["between_std"] == pytest.approx(50**0.5)
    assert s["within_std"] == pytest.approx(1.0) and (s["entries"], s["runs"]) == (2, 6)
    # seeds that swamp the entries: the same mean, wide seeds
    assert AG.spread({"A": [0.0, 10.0], "B": [0.0, 10.0]})["eta2"] == pytest.approx(0.0)
    assert AG.spread({"A": [1.0], "B": [2.0]}) is None  # no seed repeated: nothing to compare
    assert AG.headline("mig") and AG.headline("dci.disentanglement") and not AG.headline("factorvae.num_active_dims")
    assert not AG.headline("counterfactual.Bangs.gain") and not AG.headline("psnr.std")
    study = S.parse({**TINY, "claims": []})
    rows = [{"data": "sklearn-digits", "label": lab, "seed": seed, "metric": m, "value": v}
            for lab, base in (("ae", 0.0), ("bvae-b4", 1.0)) for seed in (0, 1, 2)
            for m, v in (("mig", base + seed), ("psnr", 10 - base - seed), ("psnr.std", 1.0))]
    summary = AG.summarise(study, {"rows": rows, "runs": [], "set_keys": []})
    assert [x["metric"] for x in summary["spread"]] == ["mig", "psnr"]
    corr = summary["spearman"]["sklearn-digits"]
    assert corr["metrics"] == ["mig", "psnr"] and corr["rho"] == [[1.0, -1.0], [-1.0, 1.0]] and corr["runs"] == 6
    text = AG.markdown(study, {"rows": rows, "runs": [], "set_keys": []}, summary)
    assert "## Seeds against entries (sklearn-digits)" in text and "| mig | 0.27 |" in text
    assert "Spearman's ρ over 6 runs" in text and "| mig | +1.00 | -1.00 |" in text


def test_the_study_report_draws_results_jsons_rank_correlations_per_data_set(tmp_path):
    import json

    from factorkit.study.report import build_study_report

    out = tmp_path / "s"
    out.mkdir()
    (out / "results.csv").write_text("run,method,data,seed,metric,value,floor,seconds\n")
    spearman = {"faces": {"metrics": ["mig", "sap"], "rho": [[1.0, 0.25], [0.25, 1.0]], "runs": 4},
                "shapes2d": {"metrics": ["mig"], "rho": [], "runs": 2}}
    (out / "results.json").write_text(json.dumps({"name": "t", "runs": [], "stats": [], "claims": [], "spread": [],
                                                  "spearman": spearman}))
    page = build_study_report(out).read_text()
    section = page[page.index("Rank correlation between metrics"):]
    assert "faces (4 runs)" in section and "+0.25" in section and "+1.00" in section
    assert "shapes2d (2 runs)" in section and "Needs at least two metrics" in section
    # an older results.json without the key says how to get it
    (out / "results.json").write_text(json.dumps({"name": "t", "runs": [], "stats": [], "claims": [], "spread": []}))
    assert "run the study again" in build_study_report(out).read_text()
