from dataclasses import dataclass
from typing import Literal

import pytest

from factorkit.config import RunConfig, TrainConfig, parse_value
from factorkit.data import shapes2d
from factorkit.errors import UsageError
from factorkit.models.ae import AutoEncoder
from factorkit.train.rundir import load_config as load_run_config


def make_cfg():
    return RunConfig("ae", "shapes2d", AutoEncoder.Config(), shapes2d.Options(), TrainConfig())


def test_parse_value_types():
    assert parse_value("4", int, "k") == 4
    assert parse_value("0.5", float, "k") == 0.5
    assert parse_value("1e-4", float, "k") == 1e-4
    assert parse_value("true", bool, "k") is True
    assert parse_value("off", bool, "k") is False
    assert parse_value("MSE", Literal["bce", "mse"], "k") == "mse"
    assert parse_value("none", int | None, "k") is None
    assert parse_value("3", int | None, "k") == 3
    assert parse_value("1,2,3", tuple[int, ...], "k") == (1, 2, 3)


@pytest.mark.parametrize(
    "text,tp,expected",
    [("x", int, "an integer"), ("1.5", int, "an integer"), ("abc", float, "a number"),
     ("maybe", bool, "boolean"), ("l1", Literal["bce", "mse"], "one of 'bce', 'mse'")],
)
def test_parse_value_rejects_wrong_type(text, tp, expected):
    with pytest.raises(UsageError, match=expected):
        parse_value(text, tp, "model.x")


def test_set_applies_typed_values():
    cfg = make_cfg()
    cfg.apply_strings(["model.latent_dim=6", "train.steps=12", "model.recon=mse", "data.seed=3"])
    assert cfg.model.latent_dim == 6 and cfg.train.steps == 12 and cfg.model.recon == "mse" and cfg.data.seed == 3


def test_unknown_key_lists_valid_keys():
    cfg = make_cfg()
    with pytest.raises(UsageError) as err:
        cfg.apply_strings(["model.bogus=1"])
    msg = str(err.value)
    assert "model.bogus" in msg and "model.latent_dim" in msg and "model.recon" in msg
    with pytest.raises(UsageError, match="valid keys"):
        cfg.apply_strings(["nosection=1"])
    with pytest.raises(UsageError, match="KEY=VALUE"):
        cfg.apply_strings(["model.latent_dim"])


def test_yaml_round_trip(tmp_path):
    cfg = make_cfg()
    cfg.apply_strings(["model.latent_dim=7", "train.batch_size=8", "data.test_fraction=0.2"])
    cfg.save(tmp_path / "config.yaml")
    again = load_run_config(tmp_path / "config.yaml")
    assert again.to_dict() == cfg.to_dict()
    assert again.model == cfg.model and again.train == cfg.train and again.data == cfg.data


def test_yaml_with_bad_type_is_rejected(tmp_path):
    cfg = make_cfg()
    cfg.save(tmp_path / "config.yaml")
    text = (tmp_path / "config.yaml").read_text().replace("latent_dim: 10", "latent_dim: ten")
    (tmp_path / "config.yaml").write_text(text)
    with pytest.raises(UsageError, match="model.latent_dim"):
        load_run_config(tmp_path / "config.yaml")


@dataclass
class _Nested:
    a: int = 1


def test_ranges_are_checked_by_set_build_and_yaml(tmp_path):
    import factorkit as fk

    cfg = make_cfg()
    with pytest.raises(UsageError, match=r"--set train.batch_size=0: must be ≥ 1"):
        cfg.apply_strings(["train.batch_size=0"])
    with pytest.raises(UsageError, match=r"model.beta=-1.0: must be ≥ 0"):
        fk.models.build("betavae", fk.data.describe("shapes2d"), beta=-1)
    assert fk.models.build("betavae", fk.data.describe("shapes2d"), beta=0).config.beta == 0.0  # the bound itself is allowed
    cfg.save(tmp_path / "config.yaml")
    text = (tmp_path / "config.yaml").read_text().replace("keep_checkpoints: 3", "keep_checkpoints: 0")
    (tmp_path / "config.yaml").write_text(text)
    with pytest.raises(UsageError, match=r"train.keep_checkpoints=0: must be ≥ 1"):
        load_run_config(tmp_path / "config.yaml")
