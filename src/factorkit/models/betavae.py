"""betavae: β-VAE (Higgins et al., ICLR 2017) — the baseline of UD-GAN Tables 1–2 and Hu et al.
Table 3 (β ∈ {1, 2, 4, 8}; β = 1 is the plain VAE).

    L = E_q[−log p(x|z)] + β · KL(q(z|x) ‖ N(0, I))          (Higgins et al., eq. 4)

with a diagonal Gaussian q(z|x) = N(μ, diag σ²) and the closed-form KL
    KL = ½ Σ_j (μ_j² + σ_j² − 1 − log σ_j²).
The representation scored by the metrics is the mean μ (disentanglement_lib ``mean``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch

from ..config import nonnegative, positive
from .ae import AutoEncoder, reconstruction_loss
from .base import Code
from .registry import register

Tensor = torch.Tensor


def gaussian_kl(mu: Tensor, logvar: Tensor) -> Tensor:
    """KL(N(μ, σ²) ‖ N(0, 1)) summed over dimensions, mean over the batch."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(1).mean()


@register
class BetaVAE(AutoEncoder):
    name = "betavae"
    paper = "Higgins et al., ICLR 2017 (beta-VAE); baseline in UD-GAN and Hu et al."
    supervision = "none"
    layout = "latent_dim Gaussian dims (mean used as the representation)"
    operations = frozenset({"encode", "decode", "reconstruct", "traverse", "sample"})

    @dataclass
    class Config:
        latent_dim: positive() = 10
        beta: nonnegative(float) = 4.0  # KL weight (Higgins et al. dSprites: 4; Kumar's CelebA row: 2)
        lr: positive(float) = 1e-4
        beta1: float = 0.9
        beta2: float = 0.999
        recon: Literal["bce", "mse"] = "bce"

    def code_width(self) -> int:
        return 2 * self.config.latent_dim  # μ and log σ²

    @classmethod
    def presets(cls, info) -> dict[str, dict[str, Any]]:
        p = super().presets(info)
        p["paper"]["model.beta"] = 2.0 if info.name == "celeba" else 4.0
        return p

    def _posterior(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = self.encoder(x)
        mu, logvar = h.chunk(2, dim=1)
        return mu, logvar

    def train_step(self, batch, step, opt):
        x = batch["image"]
        mu, logvar = self._posterior(x)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()  # reparameterisation
        rec = reconstruction_loss(self.decoder(z), x, self.config.recon)
        kl = gaussian_kl(mu, logvar)
        loss = rec + self.config.beta * kl
        opt.step("autoencoder", loss)
        return {"loss": loss, "reconstruction": rec, "kl": kl}

    def encode(self, images: Tensor) -> Code:
        mu, logvar = self._posterior(self.check_images(images))
        return Code(mu, {"z": slice(0, mu.shape[1])}, {"logvar": logvar})

    def sample_code(self, n: int, generator: torch.Generator | None = None) -> Code:
        z = torch.randn(n, self.config.latent_dim, generator=generator).to(self.device)
        return Code(z, {"z": slice(0, z.shape[1])})
