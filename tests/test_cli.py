import json
import os

import pytest

from factorkit.cli import main

from .fixtures import make_mnist


def run_main(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_datasets_json_lists_everything(capsys):
    code, out, _ = run_main(capsys, "datasets", "--json")
    assert code == 0
    rows = {r["name"]: r for r in json.loads(out)}
    assert set(rows) >= {"shapes2d", "faces", "sklearn-digits", "digits", "colored-digits", "celeba", "folder"}
    assert [f["name"] for f in rows["shapes2d"]["factors"]] == ["shape", "scale", "orientation", "x", "y"]
    assert [f["size"] for f in rows["shapes2d"]["factors"]] == [3, 6, 40, 32, 32]
    assert "Smiling" in rows["faces"]["attributes"] and rows["faces"]["has_counterfactual"]
    assert len(rows["celeba"]["attributes"]) == 40 and rows["celeba"]["needs_data_root"]
    assert rows["digits"]["needs_data_root"] and not rows["faces"]["needs_data_root"]


def test_models_json(capsys):
    code, out, _ = run_main(capsys, "models", "--json")
    rows = {r["name"]: r for r in json.loads(out)}
    assert code == 0 and {"ae", "betavae"} <= set(rows)
    assert rows["betavae"]["supervision"] == "none" and "Higgins" in rows["betavae"]["paper"]


BAD = [
    (["train", "ae", "--data", "nosuch"], "unknown dataset 'nosuch'; valid: shapes2d"),
    (["train", "nosuch", "--data", "shapes2d"], "unknown model 'nosuch'; valid: ae"),
    (["train", "ae", "--data", "shapes2d", "--set", "model.bogus=1"], "--set model.bogus: unknown key; valid model keys: model.latent_dim"),
    (["train", "ae", "--data", "shapes2d", "--set", "model.latent_dim=big"], "--set model.latent_dim=big: expected an integer"),
    (["train", "ae", "--data", "shapes2d", "--set", "train.device=tpu"], "expected one of 'auto', 'cpu', 'cuda'"),
    (["train", "ae", "--data", "digits"], "dataset 'digits' reads local files: pass --data-root DIR"),
    (["train", "ae", "--data", "digits", "--data-root", "/no/such/dir"], "--data-root /no/such/dir: no such directory"),
    (["train", "ae", "--data", "shapes2d", "--preset", "slow"], "invalid choice: 'slow'"),
    (["train", "ae", "--data", "shapes2d", "--resume"], "--resume needs --out DIR"),
    # ranges declared with each config field (issue 15)
    (["train", "ae", "--data", "shapes2d", "--batch-size", "0"], "train.batch_size=0: must be ≥ 1"),
    (["train", "ae", "--data", "shapes2d", "--batch-size", "-4"], "train.batch_size=-4: must be ≥ 1"),
    (["train", "ae", "--data", "shapes2d", "--steps", "-5"], "train.steps=-5: must be ≥ 1"),
    (["train", "ae", "--data", "shapes2d", "--set", "train.log_every=0"], "--set train.log_every=0: must be ≥ 1"),
    (["train", "ae", "--data", "shapes2d", "--set", "train.num_workers=-1"], "--set train.num_workers=-1: must be ≥ 0"),
    (["train", "ae", "--data", "shapes2d", "--set", "model.lr=-1"], "--set model.lr=-1.0: must be > 0"),
    (["train", "ae", "--data", "shapes2d", "--set", "train.keep_checkpoints=0"], "train.keep_checkpoints=0: must be ≥ 1"),
    (["train", "ae", "--data", "shapes2d", "--set", "model.latent_dim=0"], "--set model.latent_dim=0: must be ≥ 1"),
    (["train", "mddae", "--data", "faces", "--set", "model.dropout=1"], "--set model.dropout=1.0: must be ≥ 0 and < 1"),
    (["evaluate", "runs/none", "--num-train", "-5"], "--num-train -5: must be ≥ 1"),
    (["evaluate", "runs/none", "--num-train", "0"], "--num-train 0: must be ≥ 1"),
    (["edit", "runs/none", "--image", "x.png", "--traverse", "0", "--steps", "-1", "--out", "o.png"],
     "--steps -1: a --traverse strip needs at least 2 images"),
    # found by the fuzz test (tests/test_fuzz_cli.py)
    (["train", "ae", "--data", "shapes2d", "--seed", "-5"], "train.seed=-5: must be ≥ 0"),
    (["evaluate", "runs/none", "--seed", "-5"], "--seed -5: must be ≥ 0"),
    (["train", "ae", "--data", "shapes2d", ""], "unrecognized argument: '' (see factorkit --help)"),
    (["train", "mddae", "--data", "sklearn-digits", "--batch-size", "1", "--steps", "1", "--num-workers", "0"],
     "train.batch_size=1: mddae uses batch normalisation, which needs at least 2 images per batch"),
    (["train", "ae", "--data", "sklearn-digits", "--batch-size", "5000", "--steps", "1", "--num-workers", "0"],
     "train.batch_size=5000 is more than the 1438 training images; use --batch-size 1438 or less"),
]


@pytest.mark.parametrize("argv,message", BAD)
def test_bad_input_exit_2_one_line(capsys, argv, message):
    code, out, err = run_main(capsys, *argv)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert message in lines[0]
    assert "Traceback" not in err


def test_wrong_layout_and_empty_resume(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    code, _, err = run_main(capsys, "train", "ae", "--data", "digits", "--data-root", str(tmp_path / "empty"), "--steps", "1")
    assert code == 2 and "missing MNIST file" in err and "expected layout" in err and len(err.strip().splitlines()) == 1
    code, _, err = run_main(capsys, "train", "ae", "--data", "shapes2d", "--resume", "--out", str(tmp_path / "empty"))
    assert code == 2 and "holds no run" in err and len(err.strip().splitlines()) == 1
    code, _, err = run_main(capsys, "train", "ae", "--data", "celeba", "--data-root", str(tmp_path / "empty"))
    assert code == 2 and "list_attr_celeba.txt" in err


def test_exit_code_in_a_real_process(cli, tmp_path):
    r = cli("train", "ae", "--data", "nosuch")
    assert r.returncode == 2 and r.stderr.strip() == (
        "factorkit: error: unknown dataset 'nosuch'; valid: shapes2d, faces, sklearn-digits, digits, "
        "colored-digits, celeba, folder"
    )


def test_train_on_mnist_fixture_through_cli(tmp_path, capsys):
    root = make_mnist(tmp_path / "m", n_train=32)
    out = tmp_path / "run"
    code, _, err = run_main(capsys, "train", "ae", "--data", "digits", "--data-root", str(root), "--steps", "3",
                            "--batch-size", "8", "--num-workers", "0", "--out", str(out), "--quiet")
    assert code == 0, err
    assert (out / "model.safetensors").is_file() and "run directory" in err
    cfg = (out / "config.yaml").read_text()
    assert f"root: {root}" in cfg and "name: digits" in cfg


def test_resume_refuses_changed_keys_and_applies_safe_ones(tmp_path, capsys):
    import yaml

    out = tmp_path / "run"
    base = ["train", "ae", "--data", "shapes2d", "--out", str(out), "--num-workers", "0", "--quiet"]
    code, _, err = run_main(capsys, *base, "--steps", "4", "--batch-size", "8", "--checkpoint-every", "2",
                            "--set", "model.latent_dim=6")
    assert code == 0, err
    refused = [
        (["--set", "model.latent_dim=4"], "--resume: model.latent_dim=4 differs from the run's saved model.latent_dim=6"),
        (["--batch-size", "16"], "train.batch_size=16 differs from the run's saved train.batch_size=8"),
        (["--seed", "3"], "train.seed=3 differs from the run's saved train.seed=0"),
        (["--set", "data.seed=5"], "data.seed=5 differs from the run's saved data.seed="),
        (["--preset", "paper"], "--preset paper differs from the run's saved 'fast'"),
        (["--set", "model.nope=1"], "--set model.nope: unknown key"),
    ]
    for extra, message in refused:
        code, _, err = run_main(capsys, *base, "--steps", "6", "--resume", *extra)
        assert code == 2 and len(err.strip().splitlines()) == 1 and message in err, (extra, err)
    assert yaml.safe_load((out / "config.yaml").read_text())["train"]["steps"] == 4  # nothing was written
    # safe keys are applied and echoed; a flag equal to the saved value passes silently
    code, _, err = run_main(capsys, *base, "--steps", "6", "--resume", "--batch-size", "8", "--set", "train.log_every=3",
                            "--set", "model.latent_dim=6")
    assert code == 0, err
    assert "resuming with train.steps=6 (was 4), train.log_every=3 (was 10)" in err
    saved = yaml.safe_load((out / "config.yaml").read_text())["train"]
    assert saved["steps"] == 6 and saved["log_every"] == 3
    assert json.loads((out / "log.jsonl").read_text().splitlines()[-1])["step"] == 6


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    import factorkit as fk

    ds = fk.data.load("sklearn-digits", "train")
    run = tmp_path_factory.mktemp("paths") / "run"
    fk.train(fk.models.build("ae", ds, latent_dim=4), ds, steps=4, out=run, batch_size=16, num_workers=0,
             checkpoint_every=2, progress=False)
    return run


def test_every_user_path_is_checked_before_any_work(tiny_run, tmp_path, capsys):
    from PIL import Image

    img = tmp_path / "in.png"
    Image.new("L", (8, 8)).save(img)
    a_file = tmp_path / "notes.txt"
    a_file.write_text("x")
    locked = tmp_path / "locked.png"
    Image.new("L", (8, 8)).save(locked)
    locked.chmod(0)
    run, edit = str(tiny_run), ["--traverse", "0"]
    cases = [
        (["edit", run, "--image", "-", *edit, "--out", str(tmp_path / "o.png")], "--image -: reading an image from standard input"),
        (["edit", run, "--image", str(tmp_path), *edit, "--out", str(tmp_path / "o.png")], "is a folder, not an image"),
        (["edit", run, "--image", str(img), "--swap-with", str(tmp_path), "--chunks", "0", "--out", str(tmp_path / "o.png")],
         "--swap-with"),
        (["edit", run, "--image", str(img), *edit, "--out", str(tmp_path)], "is a folder; give a file name ending in .png"),
        (["edit", run, "--image", str(img), *edit, "--out", str(tmp_path / "o.jpg")], "the file is written as PNG"),
        (["edit", run, "--image", str(img), *edit, "--out", str(a_file / "o.png")], "is a file, so the folder cannot be made"),
        (["edit", run, "--image", str(img), *edit, "--out", "-"], "is standard output"),
        (["edit", str(a_file), "--image", str(img), *edit, "--out", str(tmp_path / "o.png")], "is a file, not a run directory"),
        (["edit", str(tmp_path), "--image", str(img), *edit, "--out", str(tmp_path / "o.png")], "holds no factorkit run"),
        (["evaluate", str(tmp_path / "nope")], "no such run directory"),
        (["evaluate", str(a_file)], "is a file, not a run directory"),
        (["report", str(tmp_path)], "holds no factorkit run (no config.yaml)"),
        (["train", "ae", "--data", "shapes2d", "--out", str(a_file)], "--out " + str(a_file) + ": is an existing file"),
        (["train", "ae", "--data", "folder", "--data-root", str(a_file)], "--data-root " + str(a_file) + ": is a file"),
        (["train", "ae", "--data", "shapes2d", "--steps", "1", "--device", "cuda", "--out", str(tmp_path / "r")],
         "--device cuda: no CUDA device is available here"),
        (["demo", "--out", str(a_file)], "is an existing file"),
        (["demo", "--steps", "0"], "--steps 0: must be ≥ 1"),
    ]
    if os.geteuid() != 0:  # root reads any file
        cases.append((["edit", run, "--image", str(locked), *edit, "--out", str(tmp_path / "o.png")], "permission denied"))
    for argv, message in cases:
        code, _, err = run_main(capsys, *argv)
        assert code == 2 and len(err.strip().splitlines()) == 1 and message in err and "Traceback" not in err, (argv, err)
    assert not (tmp_path / "o.png").exists() and not (tmp_path / "r").exists()
