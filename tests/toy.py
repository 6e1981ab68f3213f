"""A two-player toy model for trainer tests: a generator and a critic with an extra schedule."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from factorkit.data.base import ArrayDataset, DatasetInfo, Factor
from factorkit.models.base import Code, Model


def tiny_dataset(n: int = 64, size: int = 8, seed: int = 0) -> ArrayDataset:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, size, size, 1), dtype=np.uint8)
    info = DatasetInfo("tiny", (1, size, size), (Factor("f", 2),), ("a",))
    ds = ArrayDataset(info, "train", images, rng.integers(0, 2, (n, 1)), rng.integers(0, 2, (n, 1)))
    from factorkit.data.shapes2d import Options

    ds.options = Options()
    ds.root = None
    return ds


class TwoPlayer(Model):
    """Critic: ``critic_iters`` updates every ``critic_every``-th step, else 1; then one
    generator update (the DNA-GAN/WGAN schedule shape)."""

    name = "toy2"

    @dataclass
    class Config:
        lr: float = 0.05
        critic_every: int = 3
        critic_iters: int = 4
        nan_at: int = -1  # step at which the generator loss becomes NaN

    def __init__(self, config, info):
        super().__init__(config, info)
        d = info.channels * info.size * info.size
        self.gen = nn.Linear(d, d)
        self.critic = nn.Linear(d, 1)
        self.calls: list[tuple[str, int]] = []

    def configure_optimizers(self):
        return {
            "critic": torch.optim.SGD(self.critic.parameters(), lr=self.config.lr),
            "generator": torch.optim.Adam(self.gen.parameters(), lr=self.config.lr),
        }

    def critic_iters_at(self, step: int) -> int:
        return self.config.critic_iters if step % self.config.critic_every == 0 else 1

    def train_step(self, batch, step, opt):
        x = batch["image"].flatten(1)
        for _ in range(self.critic_iters_at(step)):
            loss_c = self.critic(self.gen(x).detach()).mean() - self.critic(x).mean()
            opt.step("critic", loss_c)
            self.calls.append(("critic", step))
        loss_g = -self.critic(self.gen(x)).mean() + 0.1 * (self.gen(x) - x).pow(2).mean()
        if step == self.config.nan_at:
            loss_g = loss_g * float("nan")
        opt.step("generator", loss_g)
        self.calls.append(("generator", step))
        return {"critic": loss_c, "generator": loss_g}

    def encode(self, images):
        x = self.check_images(images).flatten(1)
        return Code(x)

    def decode(self, code):
        return torch.sigmoid(self.gen(code.tensor)).view(-1, *self.info.image_shape)
