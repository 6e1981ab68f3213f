"""ae: a plain convolutional autoencoder — the baseline every paper compares with.

Encoder/decoder: the β-VAE layout (Higgins et al. 2017; disentanglement_lib ``conv_encoder``):
four k4 s2 convolutions (32-32-64-64) → FC 256 → code; mirrored decoder. Reconstruction loss:
Bernoulli (BCE on logits, summed over pixels, mean over the batch) as in disentanglement_lib,
or squared error. Adam, lr 1e-4.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F

from ..config import positive
from ..nn.blocks import ConvDecoder, ConvEncoder
from .base import Code, Model
from .registry import register

Tensor = torch.Tensor


def reconstruction_loss(logits: Tensor, target: Tensor, kind: str) -> Tensor:
    """Sum over pixels, mean over the batch. ``bce``: −log p(x|z) of a Bernoulli decoder;
    ``mse``: squared error."""
    if kind == "bce":
        per = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    else:
        per = (torch.sigmoid(logits) - target) ** 2
    return per.flatten(1).sum(1).mean()


@register
class AutoEncoder(Model):
    name = "ae"
    paper = "baseline (plain autoencoder), e.g. mddAE Table 1 'AE', Hu et al. Table 2 'AE'"
    supervision = "none"
    layout = "one code vector of latent_dim dims"
    operations = frozenset({"encode", "decode", "reconstruct", "traverse"})

    @dataclass
    class Config:
        latent_dim: positive() = 10  # code size (disentanglement_lib: 10)
        lr: positive(float) = 1e-4  # Adam learning rate (disentanglement_lib)
        beta1: float = 0.9
        beta2: float = 0.999
        recon: Literal["bce", "mse"] = "bce"  # Bernoulli decoder (disentanglement_lib) or MSE

    def __init__(self, config: "AutoEncoder.Config", info) -> None:
        super().__init__(config, info)
        c, s = info.channels, info.size
        self.encoder = ConvEncoder(c, s, self.code_width())
        self.decoder = ConvDecoder(config.latent_dim, c, s)

    def code_width(self) -> int:
        return self.config.latent_dim

    @classmethod
    def presets(cls, info) -> dict[str, dict[str, Any]]:
        return {
            "fast": {"train.steps": 2000, "train.batch_size": 64},
            "paper": {"train.steps": 300000, "train.batch_size": 64, "model.lr": 1e-4},
        }

    def configure_optimizers(self):
        c = self.config
        return {"autoencoder": torch.optim.Adam(self.parameters(), lr=c.lr, betas=(c.beta1, c.beta2))}

    def train_step(self, batch, step, opt):
        x = batch["image"]
        z = self.encoder(x)
        rec = reconstruction_loss(self.decoder(z), x, self.config.recon)
        opt.step("autoencoder", rec)
        return {"reconstruction": rec}

    def encode(self, images: Tensor) -> Code:
        z = self.encoder(self.check_images(images))
        return Code(z, {"z": slice(0, z.shape[1])})

    def decode(self, code: Code) -> Tensor:
        return torch.sigmoid(self.decoder(code.tensor))

