"""docs/adding_a_method.md, followed step by step: a toy two-player GAN defined in this file and
registered where it is defined trains through the CLI, resumes, loads and lists like any
built-in method."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pytest
import torch
from torch import nn

import factorkit as fk
from factorkit.cli import main
from factorkit.errors import UnsupportedOperation
from factorkit.models.base import Code, Model
from factorkit.models.registry import register
from factorkit.nn import adversarial as adv
from factorkit.nn.blocks import conv_stack, linear_block, scaled
from factorkit.train.distributed import Dist
from factorkit.train.trainer import Players


# 1. the file and the registration
@register
class ToyGAN(Model):
    name = "toy-gan"
    paper = "Goodfellow et al., NeurIPS 2014 (a toy for docs/adding_a_method.md)"
    supervision = "none"
    layout = "z_dim latent units of the generator"
    operations = frozenset({"decode", "sample"})

    # 2. Config: defaults with their citation
    @dataclass
    class Config:
        z_dim: int = 8  # latent size
        lr: float = 2e-4  # Adam (Radford et al. 2016, §4)
        beta1: float = 0.5
        width: float = 1.0  # channel multiplier of D
        d_every: int = 2  # D updates on every d_every-th step only (a critic schedule)

    # 3. networks from nn/blocks.py
    def __init__(self, config, info) -> None:
        super().__init__(config, info)
        c = config
        pixels = info.channels * info.size * info.size
        self.generator = nn.Sequential(*linear_block(c.z_dim, 64, act="relu"), *linear_block(64, pixels, act="sigmoid"))
        w = scaled(16, c.width)
        side = info.size // 4
        self.discriminator = nn.Sequential(*conv_stack(info.channels, (w, 2 * w), norm="none", act="lrelu"), nn.Flatten(),
                                           *linear_block(2 * w * side * side, 1))
        self.d_values: list[tuple[int, float]] = []

    def generate(self, n: int) -> torch.Tensor:
        z = torch.randn(n, self.config.z_dim, device=self.device)
        return self.generator(z).view(n, *self.info.image_shape)

    # 4. players
    def configure_optimizers(self):
        c = self.config
        return {"discriminator": torch.optim.Adam(self.discriminator.parameters(), c.lr, betas=(c.beta1, 0.999)),
                "generator": torch.optim.Adam(self.generator.parameters(), c.lr, betas=(c.beta1, 0.999))}

    def train_step(self, batch, step, opt):
        losses = {}
        if step % self.config.d_every == 0:
            losses.update(self.discriminator_step(batch, opt))
            self.d_values.append((step, float(losses["discriminator"])))
        losses.update(self.generator_step(opt))
        return losses

    def discriminator_step(self, batch, opt):
        """D minimises the D side of Goodfellow et al. eq. 1."""
        x = batch["image"]
        loss = adv.d_loss(self.discriminator(x).squeeze(1), self.discriminator(self.generate(len(x)).detach()).squeeze(1))
        opt.step("discriminator", loss)
        return {"discriminator": loss.detach()}

    def generator_step(self, opt):
        """G minimises the non-saturating loss of §3."""
        loss = adv.g_loss(self.discriminator(self.generate(16)).squeeze(1))
        opt.step("generator", loss)
        return {"generator": loss.detach()}

    # 5. operations
    def decode(self, code: Code) -> torch.Tensor:
        return self.generator(code.tensor).view(-1, *self.info.image_shape)

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        z = torch.randn(n, self.config.z_dim, generator=generator).to(self.device)
        return self.decode(Code(z))

    def visuals(self, batch):
        return {"input": batch["image"][:8], "samples": self.sample(8)}

    # 6. presets
    @classmethod
    def presets(cls, info):
        return {"fast": {"model.width": 0.5, "train.steps": 8, "train.batch_size": 8},
                "paper": {"model.width": 1.0, "train.steps": 100000, "train.batch_size": 64}}


@pytest.fixture(scope="module")
def shapes():
    return fk.data.load("shapes2d", "train")


# 7. tests
def test_registered_where_defined_and_listed(capsys):
    assert fk.models.model_class("toy-gan") is ToyGAN
    assert main(["models", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["toy-gan"]["operations"] == ["decode", "sample"]
    with pytest.raises(TypeError, match="taken by"):
        register(type("Other", (ToyGAN,), {"name": "mixing"}))


def test_each_player_changes_only_its_parameters(shapes):
    model = fk.models.build("toy-gan", shapes, seed=0)
    opts = model.configure_optimizers()
    players = Players(opts, {n: None for n in opts}, Dist(), fetch=None)
    own = {"discriminator": "discriminator.", "generator": "generator."}
    batch = shapes.get_batch(np.arange(8))
    for name, run in (("discriminator", lambda: model.discriminator_step(batch, players)),
                      ("generator", lambda: model.generator_step(players))):
        before = {k: v.detach().clone() for k, v in model.named_parameters()}
        run()
        changed = {k for k, v in model.named_parameters() if not torch.equal(before[k], v)}
        assert changed and all(k.startswith(own[name]) for k in changed), (name, changed)


def test_build_seeds_the_weights_and_leaves_the_global_rng(shapes):
    state = torch.get_rng_state()
    a = fk.models.build("toy-gan", shapes, seed=3).state_dict()
    assert torch.equal(torch.get_rng_state(), state)
    b = fk.models.build("toy-gan", shapes, seed=3).state_dict()
    c = fk.models.build("toy-gan", shapes, seed=4).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_losses_reported_on_some_steps_are_averaged_over_those_steps(shapes, tmp_path):
    model = fk.models.build("toy-gan", shapes, seed=0)
    fk.train(model, shapes, steps=8, out=tmp_path / "run", num_workers=0, log_every=4, image_every=0, progress=False)
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [4, 8]
    for record, steps in zip(log, ((0, 2), (4, 6))):
        expected = np.mean([v for s, v in model.d_values if s in steps])
        assert record["losses"]["discriminator"] == pytest.approx(expected, rel=1e-6)
        assert list(record["losses"]) == ["discriminator", "generator"]


def test_trains_resumes_and_loads_through_the_cli(tmp_path, capsys):
    out = tmp_path / "cli"
    base = ["train", "toy-gan", "--data", "shapes2d", "--out", str(out), "--num-workers", "0", "--quiet"]
    assert main([*base, "--steps", "4", "--checkpoint-every", "2"]) == 0
    assert main([*base, "--steps", "6", "--resume"]) == 0
    capsys.readouterr()
    model = fk.load(out)
    assert isinstance(model, ToyGAN) and model.config.width == 0.5  # the fast preset
    assert model.sample(3).shape == (3, *model.info.image_shape)
    with pytest.raises(UnsupportedOperation, match="does not support 'edit'; it supports: decode, sample"):
        model.edit(torch.zeros(1, *model.info.image_shape), attribute="shape", value=1)
    assert main(["evaluate", str(out), "--metrics", "mse"]) == 2
    assert "metric 'mse' does not apply to model 'toy-gan'" in capsys.readouterr().err
