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
    split = EV._split(codes, f, seed=0)
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
    for key in ("mig", "sap", "dci.disentanglement", "modularity", "explicitness_test", "mse", "psnr", "ssim", "ms-ssim",
                "attr-projection.mean", "attr-projection.Smiling.majority", "nn-map.mean"):
        assert key in m, key
    assert 0 <= m["mig"] <= 1 and m["psnr"] == pytest.approx(20 * np.log10(1 / m["rmse"]), rel=0.2)
    assert set(record["seconds"]) >= {"encode", "mig", "dci", "images"}
    assert json.loads(out)["metrics"] == m


def test_edit_metrics_refused_for_model_that_cannot_edit(ae_run, capsys):
    code = main(["evaluate", str(ae_run), "--metrics", "edit-success"])
    _, err = capsys.readouterr()
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "metric 'edit-success' does not apply to model 'ae' on faces: the model cannot edit" in err
    code = main(["evaluate", str(ae_run), "--metrics", "bogus"])
    assert code == 2 and "unknown metric 'bogus'" in capsys.readouterr()[1]
