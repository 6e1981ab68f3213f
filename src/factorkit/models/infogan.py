"""infogan: InfoGAN with continuous codes (Chen et al., NeurIPS 2016) on UD-GAN's own G and D — the
baseline UD-GAN's authors implemented themselves (Table 1: "the same G/D"; methods.md §2.7–2.9).

G maps N_A codes c ~ U(−1, 1) to an image (UD-GAN's Table-5 generator, no extra noise, as UD-GAN).
D's trunk carries two heads: D's logit and Q, the mean of a factored Gaussian over c with unit
variance. The variational bound on the mutual information (Chen et al., eq. 4–5) is then, up to a
constant, the negative squared error:

    L_I(G, Q) = ½ E‖c − Q(G(c))‖²                              (−log Q(c|x) + const; eq. 4's bound)
    min_{G, Q} max_D  V(D, G) + λ L_I                            (eq. 5, V non-saturating for G)

Players: ``discriminator`` (the trunk, D's head and Q's head: d_loss + λ L_I on detached fakes) and
``generator`` (g_loss + λ L_I). The representation for the metrics is Q's output on real images
(UD-GAN §5.1: "the representation learned by the discriminator"; our reading: the Q head).
λ = 1 (eq. 5; Chen et al. use 1 for discrete codes and "a smaller λ" for continuous ones without a
number: a switch).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from ..config import nonnegative, positive
from ..nn import adversarial as adv
from .base import Code, Model, images_to_signed, signed_to_images
from .registry import register
from .udgan import UDGAN, Generator, Trunk, _doublings, generator_input

Tensor = torch.Tensor


def info_loss(codes: Tensor, q_mean: Tensor) -> Tensor:
    """Eq. 4's bound for a unit-variance Gaussian Q: ½ ‖c − μ_Q(x)‖² summed over codes, batch mean."""
    return 0.5 * (codes - q_mean).pow(2).sum(1).mean()


@register
class InfoGAN(Model):
    name = "infogan"
    paper = "Chen et al., NeurIPS 2016 (InfoGAN), on UD-GAN's G/D; baseline in UD-GAN Tables 1-2"
    supervision = "none"
    layout = "N_A continuous codes c ∈ [−1, 1] (metrics: Q's estimate of c on real images)"
    operations = frozenset({"encode", "decode", "reconstruct", "traverse", "sample"})

    @dataclass
    class Config:
        knobs: positive() = 10  # N_A continuous codes (as UD-GAN)
        width: positive() = 32  # Table 5's channels
        g_norm: Literal["none", "batch"] = "none"  # BatchNorm in G, as UD-GAN's switch (fast preset: batch)
        lambda_info: nonnegative(float) = 1.0  # λ, eq. 5
        lr: positive(float) = 2e-4  # UD-GAN §5 (same optimiser for the same G/D)
        beta1: float = 0.5
        beta2: float = 0.999

    def __init__(self, config: "InfoGAN.Config", info) -> None:
        super().__init__(config, info)
        c = config
        self.generator = Generator(c.knobs, info.channels, info.size, c.width, c.g_norm)
        trunk = Trunk(info.channels, info.size, c.width, 1)
        self.features, self.d_head = trunk.features, trunk.head
        self.q_head = nn.Linear(c.width * 16, c.knobs)

    @classmethod
    def check_data(cls, info) -> None:
        _doublings(info.size)

    @classmethod
    def presets(cls, info) -> dict[str, dict[str, Any]]:
        p = UDGAN.presets(info)  # the same G/D (and g_norm), knobs, batch and steps as UD-GAN
        for preset in p.values():
            preset.pop("model.lambda_phi")
        return p

    def configure_optimizers(self):
        c = self.config

        def adam(params):
            return torch.optim.Adam(params, lr=c.lr, betas=(c.beta1, c.beta2))

        return {"discriminator": adam([*self.features.parameters(), *self.d_head.parameters(),
                                       *self.q_head.parameters()]),
                "generator": adam(self.generator.parameters())}

    def heads(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(D's logits, Q's mean) of images in [−1, 1]."""
        h = self.features(x)
        return self.d_head(h), self.q_head(h)

    def discriminator_step(self, real: Tensor, codes: Tensor, fakes: Tensor, opt) -> dict[str, Tensor]:
        """D and Q: V's D side (eq. 1) + λ L_I on detached fakes (eq. 5)."""
        real_logits, _ = self.heads(images_to_signed(real))
        fake_logits, q = self.heads(fakes.detach())
        gan, info = adv.d_loss(real_logits, fake_logits), info_loss(codes, q)
        opt.step("discriminator", gan + self.config.lambda_info * info)
        return {"discriminator": gan.detach(), "info_d": info.detach()}

    def generator_step(self, codes: Tensor, fakes: Tensor, opt) -> dict[str, Tensor]:
        """G: the non-saturating generator loss + λ L_I (eq. 5)."""
        logits, q = self.heads(fakes)
        gan, info = adv.g_loss(logits), info_loss(codes, q)
        total = gan + self.config.lambda_info * info
        opt.step("generator", total)
        return {"gan_g": gan.detach(), "info_g": info.detach(), "generator": total.detach()}

    def train_step(self, batch, step, opt):
        real = batch["image"]
        codes = torch.rand(len(real), self.config.knobs, device=real.device) * 2 - 1
        fakes = self.generator(codes)
        losses = self.discriminator_step(real, codes, fakes, opt)
        losses.update(self.generator_step(codes, fakes, opt))
        return losses

    # --- user-facing operations ----------------------------------------------------------------
    def encode(self, images: Tensor) -> Code:
        """Q's estimate of the codes, clamped to their range [−1, 1] (what G can decode)."""
        q = self.heads(images_to_signed(self.check_images(images)))[1].clamp(-1, 1)
        return Code(q, {f"c{i}": slice(i, i + 1) for i in range(self.config.knobs)})

    @torch.no_grad()
    def representation(self, images: Tensor) -> Tensor:
        """Q's output on real images (unclamped), one column per code."""
        return self.heads(images_to_signed(self.check_images(images)))[1]

    def decode(self, code: Code) -> Tensor:
        return signed_to_images(self.generator(generator_input(self, code, "values")))

    def sample_code(self, n: int, generator: torch.Generator | None = None) -> Code:
        c = torch.rand(n, self.config.knobs, generator=generator).to(self.device) * 2 - 1
        return Code(c, {f"c{i}": slice(i, i + 1) for i in range(self.config.knobs)})

    def traversal_range(self, dim: int, codes: Tensor | None = None) -> tuple[float, float]:
        return -1.0, 1.0

    def visuals(self, batch):
        x = batch["image"][:8]
        return {"input": x, "reconstruction": self.reconstruct(x),
                "samples": self.sample(8, torch.Generator().manual_seed(0))}
