import re

import numpy as np
import pytest
import torch
from PIL import Image

import factorkit as fk
from factorkit.cli import main

TINY = ["--set", "model.conv=8,8,16,16", "--set", "model.fc=32", "--set", "model.z_dim=6", "--set", "data.size=2000",
        "--batch-size", "16", "--num-workers", "0", "--quiet"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("edit") / "mddae"
    assert main(["train", "mddae", "--data", "faces", "--steps", "12", "--out", str(out), *TINY]) == 0
    return out


@pytest.fixture(scope="module")
def face_png(tmp_path_factory):
    ds = fk.data.load("faces", "test", size=2000)
    path = tmp_path_factory.mktemp("img") / "face.png"
    arr = (ds[0]["image"].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    Image.fromarray(arr).save(path)
    return path


def read(path):
    return np.asarray(Image.open(path))


def test_edit_round_trip(run, face_png, tmp_path, capsys):
    out = tmp_path / "smile.png"
    assert main(["edit", str(run), "--image", str(face_png), "--attribute", "Smiling", "--value", "1.5", "--out", str(out)]) == 0
    img = read(out)
    assert img.shape == (64, 64, 3) and img.dtype == np.uint8
    # the identity edit (ŷ set to the encoder's own value) is exactly the reconstruction
    model = fk.load(run)
    x = torch.from_numpy(read(face_png).astype(np.float32) / 255).permute(2, 0, 1)[None]
    own = float(model.encode(x)["Smiling"][0, 0])
    ident = tmp_path / "ident.png"
    assert main(["edit", str(run), "--image", str(face_png), "--attribute", "Smiling", "--value", repr(own), "--out", str(ident)]) == 0
    recon = (model.reconstruct(x)[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    np.testing.assert_array_equal(read(ident), recon)
    assert not np.array_equal(read(out), recon)


def test_edit_converts_other_sizes_with_a_notice(run, tmp_path, capsys):
    src = tmp_path / "big.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (90, 120), dtype=np.uint8)).save(src)
    assert main(["edit", str(run), "--image", str(src), "--attribute", "Eyeglasses", "--value", "1", "--out", str(tmp_path / "o.png")]) == 0
    err = capsys.readouterr().err
    assert "converted big.jpg from 120x90 L to 64x64 RGB (centre crop + resize)" in err
    strip = tmp_path / "t.png"
    assert main(["edit", str(run), "--image", str(src), "--traverse", "0", "--out", str(strip)]) == 0
    assert read(strip).shape[1] > 6 * 64  # a strip of 7 images


BAD = [
    (["--swap-with", "{img}", "--chunks", "0"], "does not support 'swap'"),
    (["--attribute", "Beard", "--value", "1"], "unknown attribute 'Beard'"),
    (["--attribute", "Smiling", "--value", "lots"], "not a number: 'lots'"),
    (["--attribute", "Smiling"], "--attribute and --value go together"),
    ([], "give exactly one edit"),
    (["--traverse", "999"], "--traverse 999: the code has dimensions"),
]


@pytest.mark.parametrize("extra,message", BAD)
def test_edit_bad_input(run, face_png, tmp_path, capsys, extra, message):
    extra = [e.format(img=face_png) for e in extra]
    code = main(["edit", str(run), "--image", str(face_png), *extra, "--out", str(tmp_path / "x.png")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and message in err[0], err
    assert not (tmp_path / "x.png").exists()


def test_edit_unreadable_files(run, tmp_path, capsys):
    fake = tmp_path / "notes.png"
    fake.write_text("not an image")
    code = main(["edit", str(run), "--image", str(fake), "--attribute", "Smiling", "--value", "1", "--out", str(tmp_path / "x.png")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "cannot read" in err[0] and "PNG or JPEG" in err[0]
    code = main(["edit", str(run), "--image", str(tmp_path / "none.png"), "--attribute", "Smiling", "--value", "1",
                 "--out", str(tmp_path / "x.png")])
    assert code == 2 and "no such file" in capsys.readouterr().err


def test_report_is_self_contained_with_an_image_per_section(run, capsys):
    assert main(["evaluate", str(run), "--metrics", "mse,psnr,ssim,counterfactual", "--json"]) == 0
    capsys.readouterr()
    import json

    record = json.loads((run / "metrics.json").read_text())
    m, fl = record["metrics"], record["floors"]
    for a in fk.data.load("faces", "test", size=2000).info.attributes:  # an edit's floor: the plain reconstruction
        assert fl[f"counterfactual.{a}.mse_edit"] == m[f"counterfactual.{a}.mse_reconstruction"]
        assert fl[f"counterfactual.{a}.ssim_edit"] == m[f"counterfactual.{a}.ssim_reconstruction"]
        assert record["floor_kind"][f"counterfactual.{a}.mse_edit"] == "reconstruction"
        assert fl[f"counterfactual.{a}.psnr_edit"] == m[f"counterfactual.{a}.psnr_reconstruction"]
        # mean per-image PSNR ≥ the PSNR of the mean MSE (Jensen: −log is convex)
        assert m[f"counterfactual.{a}.psnr_edit"] >= 10 * np.log10(1 / m[f"counterfactual.{a}.mse_edit"]) - 1e-9
    assert "psnr" not in fl  # an absolute image score has no floor
    assert main(["report", str(run)]) == 0
    page = (run / "report.html").read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page), "external reference"
    assert "http://" not in page and "https://" not in page
    sections = re.findall(r"<section><h2>(.*?)</h2>(.*?)</section>", page, re.S)
    titles = [t for t, _ in sections]
    for needed in ("Training curves", "Reconstructions", "Edits across intensities", "Edits vs true counterfactuals", "Traversals"):
        assert needed in titles, titles
    for title, body in sections:
        if title not in ("Summary", "Configuration", "Metrics"):
            assert "<img" in body and "data:image/png;base64," in body, title
    assert "Swaps" not in titles  # mddAE cannot swap: no section
    assert "counterfactual (edit vs the true counterfactual render)" in page


def test_damaged_run_files_exit_2_naming_the_file_and_the_fix(tmp_path, capsys):
    import shutil

    import factorkit as fk

    ds = fk.data.load("sklearn-digits", "train")
    run = tmp_path / "run"
    fk.train(fk.models.build("ae", ds, latent_dim=4), ds, steps=4, out=run, batch_size=16, num_workers=0,
             checkpoint_every=2, progress=False)
    cases = {}
    bad = tmp_path / "bad-yaml"
    shutil.copytree(run, bad)
    (bad / "config.yaml").write_text((bad / "config.yaml").read_text().replace("model:", "model: [", 1))
    cases[bad] = ("config.yaml: damaged, not valid YAML", "retrain")
    bad = tmp_path / "bad-sections"
    shutil.copytree(run, bad)
    (bad / "config.yaml").write_text("model: 3\ndata: {}\ntrain: {}\n")
    cases[bad] = ("config.yaml: damaged: expected sections", "retrain")
    bad = tmp_path / "bad-weights"
    shutil.copytree(run, bad)
    data = (bad / "model.safetensors").read_bytes()
    (bad / "model.safetensors").write_bytes(data[: len(data) // 2])
    cases[bad] = ("model.safetensors: damaged", "the newest checkpoint is step 4")
    for path, (what, fix) in cases.items():
        code = main(["evaluate", str(path), "--metrics", "mse"])
        err = capsys.readouterr().err
        assert code == 2 and len(err.strip().splitlines()) == 1 and what in err and fix in err, err
    # the advice works: --resume rewrites model.safetensors from the last checkpoint
    bad = tmp_path / "bad-weights"
    assert main(["train", "ae", "--data", "sklearn-digits", "--out", str(bad), "--resume", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(bad), "--metrics", "mse"]) == 0


def test_damaged_metrics_json_and_log_jsonl(tmp_path, capsys):
    import json
    import shutil

    ds = fk.data.load("sklearn-digits", "train")
    run = tmp_path / "run"
    fk.train(fk.models.build("ae", ds, latent_dim=4), ds, steps=4, out=run, batch_size=16, num_workers=0,
             checkpoint_every=2, progress=False)
    with open(run / "log.jsonl", "a") as fh:
        fh.write('{"step": 5, "loss')  # a last line cut by a kill: tolerated
    assert main(["report", str(run)]) == 0
    capsys.readouterr()

    bad = tmp_path / "bad-metrics"
    shutil.copytree(run, bad)
    (bad / "metrics.json").write_text('{"metrics": {"mse": 0.1')
    assert main(["report", str(bad)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "metrics.json: damaged (not valid JSON" in err
    assert f"factorkit evaluate {bad}" in err
    # the advice works, and nothing is lost: the damaged file is kept beside the new one
    assert main(["evaluate", str(bad), "--metrics", "mse"]) == 0
    err = capsys.readouterr().err
    assert "metrics.json was damaged; kept it as metrics.json.damaged" in err
    assert (bad / "metrics.json.damaged").read_text() == '{"metrics": {"mse": 0.1'
    assert "mse" in json.loads((bad / "metrics.json").read_text())["metrics"]
    assert main(["report", str(bad)]) == 0
    capsys.readouterr()

    bad = tmp_path / "bad-log"
    shutil.copytree(run, bad)
    lines = (bad / "log.jsonl").read_text().splitlines()
    lines[0] = lines[0][:10]
    (bad / "log.jsonl").write_text("\n".join(lines) + "\n")
    assert main(["report", str(bad)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "log.jsonl: damaged at line 1" in err
    assert "the newest checkpoint is step 4" in err and "--resume" in err
    assert main(["train", "ae", "--data", "sklearn-digits", "--out", str(bad), "--resume", "--quiet"]) == 0
    capsys.readouterr()
    assert main(["report", str(bad)]) == 0
