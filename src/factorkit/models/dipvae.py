"""dipvae: DIP-VAE-I and -II (Kumar, Sattigeri & Balakrishnan, "Variational Inference of
Disentangled Latent Concepts from Unlabeled Observations", ICLR 2018) — a baseline of UD-GAN's
Tables 1–2 (methods.md §2.9).

The VAE's ELBO (β = 1) plus a penalty that drives a covariance matrix towards the identity:

    λ_od Σ_{i≠j} [Cov]_ij²  +  λ_d Σ_i ([Cov]_ii − 1)²                      (Kumar et al., eqs. 6–7)

    DIP-VAE-I  (eq. 6):  Cov = Cov_p(x)[μ(x)]                     (the covariance of the encoder means)
    DIP-VAE-II (eq. 7):  Cov = Cov_q(z)[z] = E_p(x)[diag σ²(x)] + Cov_p(x)[μ(x)]

Both estimated on the batch. λ_d = ``lambda_d_factor`` · λ_od, as disentanglement_lib's sweep
(factor 10 for DIP-VAE-I, 1 for DIP-VAE-II); λ_od = 10 (its dSprites default). The representation
scored by the metrics is μ, as for β-VAE.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch

from ..config import nonnegative
from .ae import reconstruction_loss
from .betavae import BetaVAE, gaussian_kl
from .registry import register

Tensor = torch.Tensor


def covariance(x: Tensor) -> Tensor:
    """The batch covariance E[x xᵀ] − E[x] E[x]ᵀ of the rows of ``x`` (N, D) → (D, D)."""
    centred = x - x.mean(0, keepdim=True)
    return centred.T @ centred / x.shape[0]


def dip_covariance(mu: Tensor, logvar: Tensor, dip_type: str) -> Tensor:
    """Eq. 6 (``i``): Cov[μ]; eq. 7 (``ii``): E[diag σ²] + Cov[μ]."""
    cov = covariance(mu)
    if dip_type == "ii":
        cov = cov + torch.diag(logvar.exp().mean(0))
    return cov


def dip_penalty(cov: Tensor, lambda_od: float, lambda_d: float) -> Tensor:
    """λ_od Σ_{i≠j} Cov_ij² + λ_d Σ_i (Cov_ii − 1)²: zero exactly for the identity matrix."""
    diag = torch.diagonal(cov)
    off = cov - torch.diag(diag)
    return lambda_od * off.pow(2).sum() + lambda_d * (diag - 1).pow(2).sum()


@register
class DIPVAE(BetaVAE):
    name = "dipvae"
    paper = "Kumar, Sattigeri & Balakrishnan, ICLR 2018 (DIP-VAE-I/-II); baseline in UD-GAN Tables 1-2"
    layout = "latent_dim Gaussian dims (mean used as the representation)"

    @dataclass
    class Config(BetaVAE.Config):
        beta: nonnegative(float) = 1.0  # the plain ELBO: the penalty does the disentangling
        dip_type: Literal["i", "ii"] = "i"  # eq. 6 (Cov of the means) | eq. 7 (Cov of q(z))
        lambda_od: nonnegative(float) = 10.0  # off-diagonal weight
        lambda_d_factor: nonnegative(float) = 10.0  # λ_d = factor · λ_od (10 for DIP-VAE-I, 1 for -II)

    @classmethod
    def presets(cls, info) -> dict[str, dict[str, Any]]:
        p = super().presets(info)
        p["paper"]["model.beta"] = 1.0
        return p

    def train_step(self, batch, step, opt):
        c = self.config
        x = batch["image"]
        mu, logvar = self._posterior(x)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        rec = reconstruction_loss(self.decoder(z), x, c.recon)
        kl = gaussian_kl(mu, logvar)
        dip = dip_penalty(dip_covariance(mu, logvar, c.dip_type), c.lambda_od, c.lambda_d_factor * c.lambda_od)
        loss = rec + c.beta * kl + dip
        opt.step("autoencoder", loss)
        return {"loss": loss, "reconstruction": rec, "kl": kl, "dip": dip}
