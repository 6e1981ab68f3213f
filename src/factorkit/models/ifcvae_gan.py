"""IFcVAE-GAN (Creswell, Mohamied, Sengupta & Bharath, "Adversarial Information Factorization") and
the naive cVAE-GAN baseline — one model, switches, no copies (methods.md §3).

The encoder gives a Gaussian identity code ẑ ~ q(z|x) = N(μ(x), σ²(x)) and one sigmoid unit ŷ per
attribute; the decoder works on [ŷ, ẑ] (ŷ first, as the authors' code). Players and losses:

    L_rec   = L_bce(x̂, x),  x̂ = D(ŷ, ẑ)                                           (§3.1, under eq. 3)
    L_gan   = ⅓[L_bce(1, C(x)) + L_bce(0, C(x̂)) + L_bce(0, C(D(z, y)))],  z ~ N(0, I)  (§3.1, Bao et al.)
    L_dec   = L_rec − δ L_gan                                                        (eq. 3)
    L_enc   = L_rec + α L_KL + ρ L_class − δ L_gan,  L_class = L_bce(ŷ, y)           (eq. 4)
    L_aux   = L_bce(A_ψ(ẑ), y);   min_ψ max_φ L_aux                                  (eq. 5)
    L_IFcVAE-GAN = L_enc − λ_aux L_aux   (λ_aux = 1 in the paper)                    (eq. 6)

The discriminator C minimises L_gan; the auxiliary network A_ψ minimises L_aux. The decoder's θ
and the encoder's φ are stepped together on one loss (``autoencoder_step``): L_KL, L_class and
L_aux do not depend on θ, so its gradient in θ is ∇θ L_dec and in φ is ∇φ L_IFcVAE-GAN — Alg. 1
lines 11–12 computed on the same forward pass, as the authors' code does with one optimiser.

Paper ≠ code (methods.md §3.3–3.4); each difference is a switch:

* ``reduction`` — ``paper``: every term a mean over its elements (the paper's 1/M Σ);
  ``code``: rec = Σ over batch, channels and pixels / (H·W), KL = ½Σ over batch and dims / nz,
  D = 0.3·(three sums over the batch), G = 0.5·(two sums), class and aux terms means.
* ``g_loss`` — ``minimax``: the decoder and encoder minimise −δ L_gan (eqs. 3–4 as written);
  ``nonsaturating``: they minimise δ·w·[L_bce(1, C(x̂)) + L_bce(1, C(D(z, y)))] (the code; w = ⅓
  under ``paper``, ½ under ``code``).
* ``y_head`` — ``trunk``: ŷ's linear head on the encoder features, so ρ L_class shapes the trunk
  (the paper: "the encoder also acts as a classifier"); ``detached``: on detached features (the
  code: ŷ is a linear probe, and the class loss on x̂ cannot reach the decoder).
* ``aux_input`` — what A_ψ reads: ``same`` ẑ sample as the reconstruction (the paper), a ``fresh``
  second sample (the code) or ``mean`` μ.
* ``d_rmsprop`` — the discriminator's RMSprop: ``code`` (smoothing α = 0.9, no momentum: the
  code's "momentum" flag lands on RMSprop's α) or ``paper`` (momentum 0.5, §4.4 / Table 3).
* ``edit(use_mean=True)`` (default) edits with ẑ = μ; ``use_mean=False`` samples ẑ, as the code.
* ``aux_objective=confuse`` (ours): the encoder minimises the cross-entropy
  of A_ψ(ẑ) against ½ instead of maximising L_aux (eq. 6). Eq. 6's objective is unbounded: the
  encoder can raise it without limit by blowing up σ of ẑ so that A_ψ's logits saturate, and with a
  small α (0.005) the fast preset did exactly that (KL 10³¹ by step 260, decoder ignoring ŷ;
  docs/results.md §11). Confusion is minimal when A_ψ is at chance, which is eq. 6's intent.
  ``confuse_prior`` (ours; the ``fast`` preset's): the same cross-entropy against each attribute's marginal rate (a running
  mean of the training labels) instead of ½. A_ψ that reads nothing from ẑ outputs the marginal, so
  only this target makes "ẑ carries no y" the encoder's optimum: against ½, with the faces' rates of
  0.08–0.5, the encoder is pushed on after A_ψ is blind, and ẑ empties (results §11).
* ``edit_output=residual`` (ours, not in the paper or code; off in both presets): the edit is
  x + (D(ŷ', ẑ) − D(ŷ, ẑ)), the input plus the decoder's change — identity details the small
  autoencoder blurs are kept (docs/results.md §10–11); ``decoded`` (the paper) returns D(ŷ', ẑ).
  ``edit_output=masked`` (ours; off in both presets): x + m ⊙ (D(ŷ', ẑ) − D(ŷ, ẑ)), where m is the
  change's own magnitude, blurred and divided by its largest value in the image (base.change_mask).
  The decoder's change is strong where the attribute lives and a faint texture elsewhere (results
  §11, "edit strength"); m keeps the first and fades the second, so an edit pushed past ŷ's modes
  (``value`` 1 + s or −s) costs less identity.
* ``prior_code=batch`` (ours; off in both presets): C's third source decodes, with each image's
  labels y, the ẑ draw of the previous image in the batch (detached, so as with N(0, I) only the decoder
  learns from it) instead of z ~ N(0, I). Results §11 measured q's codes far narrower than the prior
  (in the fast preset the spread of μ over a batch is 0.40 and σ 0.16), so the paper's prior sample asks the
  decoder for realistic faces from codes it never reconstructs or edits; another face's code with
  these labels is what an attribute transfer decodes.
* ``c_labels=projection`` (ours; off in both presets): C also reads the labels, as Miyato &
  Koyama's projection discriminator (ICLR 2018): C(x, y) = w·φ(x) + b + (V s)·φ(x), s = 2y − 1,
  over the pairs (x, y), (x̂, y) and (D(y, z'), y). Real pairs always match, so C can tell a prior
  sample that shows z′'s attributes instead of y's, and the decoder is asked to draw what ŷ says
  whatever ẑ carries — an adversary, not a fixed classifier it can fool with noise (results §11).
* ``lambda_fm`` (ours; 0 in both presets): the encoder and decoder also minimise
  λ_fm · Σ_i mean |C_i(x̂) − C_i(x)| over C's conv layers (``adversarial.feature_matching_loss``): Bao et al.'s
  pairwise feature matching against the VAE's blur, in pix2pixHD's per-layer L1 form. It raised
  the reconstruction 1.2–2.2 dB in the game at no extra cost; the masked edits' bar did not follow
  (results §11, "Sharper reconstructions").

``cvae-gan`` is the paper's naive baseline after Bao et al. (Fig. 1b): no L_aux, the decoder is
trained on the true label y instead of ŷ (``decoder_y=label``; at test time it reads ŷ, or the
value an edit sets), and a class loss on the reconstruction (``beta_rec_class=1``).

Ablations (§3.9) are weights: ``lambda_aux=0`` (without L_aux = the naive cVAE-GAN),
``beta_rec_class`` (a class loss on x̂, Table 1 row 3), ``alpha_kl`` (0: without L_KL; 0.1: higher
regularisation), ``delta_gan`` (0: without L_gan; C is then not built). ``arch=resnet`` adds one
residual block after every resolution change of the encoder, decoder and C — the paper's
residual networks were never released, so that layout is ours (methods.md §3.2).

Images are [0, 1] throughout (sigmoid decoder, BCE reconstruction), as the authors' code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..config import nonnegative, positive
from ..errors import UsageError
from ..nn import adversarial as adv
from ..nn.blocks import ResidualBlock, conv_block, linear_block
from .base import Code, Model, change_mask, require_binary_attributes, residual_output, resolve_attributes
from .registry import register

Tensor = torch.Tensor


# --- networks (methods.md §3.2: CVAE1, DISCRIMINATOR, AUX; f = fSize) ------------------------------


def _down(channels: int, f: int, resnet: bool, norm: str) -> list[nn.Module]:
    """conv k5 s2 p2 to f, 2f, 4f, 8f with ReLU (no BN); with ``resnet`` a residual block after each."""
    layers: list[nn.Module] = []
    c_in = channels
    for w in (f, 2 * f, 4 * f, 8 * f):
        layers += conv_block(c_in, w, 5, 2, 2, act="relu")
        if resnet:
            layers.append(ResidualBlock(w, norm=norm))
        c_in = w
    return layers


class Encoder(nn.Module):
    """x → (μ, log σ², ŷ logits): four k5 s2 convs, then FC heads; ŷ's head reads the features
    themselves (``y_head=trunk``) or a detached copy (``detached``)."""

    def __init__(self, channels: int, size: int, f: int, z_dim: int, n_attr: int, resnet: bool, y_head: str) -> None:
        super().__init__()
        self.conv = nn.Sequential(*_down(channels, f, resnet, "batch"), nn.Flatten())
        flat = 8 * f * (size // 16) ** 2
        self.mu, self.logvar, self.y = nn.Linear(flat, z_dim), nn.Linear(flat, z_dim), nn.Linear(flat, n_attr)
        self.detach_y = y_head == "detached"

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        h = self.conv(x)
        return self.mu(h), self.logvar(h), self.y(h.detach() if self.detach_y else h)


class Decoder(nn.Module):
    """[ŷ, z] → image logits: FC to 8f × s/16 × s/16, ReLU, then k3 s2 p1 op1 transposed convs to
    4f, 2f, f (BN, ReLU; a residual block after each with ``resnet``) and to the image."""

    def __init__(self, in_dim: int, channels: int, size: int, f: int, resnet: bool) -> None:
        super().__init__()
        self.start = (8 * f, size // 16, size // 16)
        self.fc = nn.Sequential(*linear_block(in_dim, 8 * f * (size // 16) ** 2, act="relu"))
        layers: list[nn.Module] = []
        c_in = 8 * f
        for w in (4 * f, 2 * f, f):
            layers += conv_block(c_in, w, 3, 2, 1, norm="batch", act="relu", transpose=True, output_padding=1)
            if resnet:
                layers.append(ResidualBlock(w))
            c_in = w
        layers += conv_block(c_in, channels, 3, 2, 1, transpose=True, output_padding=1)
        self.deconv = nn.Sequential(*layers)

    def forward(self, h: Tensor) -> Tensor:
        return self.deconv(self.fc(h).view(-1, *self.start))


class Discriminator(nn.Module):
    """C: four k5 s2 convs with ReLU, no BN (residual blocks with BN under ``resnet``), FC → one logit;
    with ``n_attr`` (``c_labels=projection``) plus the projection (V s)·φ(x) of the ±1 labels s
    (without it, the labels ``y`` are not read)."""

    def __init__(self, channels: int, size: int, f: int, resnet: bool, n_attr: int = 0) -> None:
        super().__init__()
        flat = 8 * f * (size // 16) ** 2
        self.net = nn.Sequential(*_down(channels, f, resnet, "batch"), nn.Flatten(), nn.Linear(flat, 1))
        if n_attr:
            self.projection = nn.Linear(n_attr, flat, bias=False)

    def forward(self, x: Tensor, y: Tensor | None = None, features: bool = False):
        """C's logit; with ``features`` also the activation after each of its conv layers (for
        ``lambda_fm``), from the same pass."""
        feats = []
        for layer in self.net[:-2]:
            x = layer(x)
            if features and isinstance(layer, (nn.ReLU, ResidualBlock)):
                feats.append(x)
        phi = self.net[-2](x)
        logit = self.net[-1](phi).squeeze(1)
        if hasattr(self, "projection"):
            logit = logit + (self.projection(2 * y - 1) * phi).sum(1)
        return (logit, feats) if features else logit


class Auxiliary(nn.Module):
    """A_ψ: ẑ → logits of y, an MLP z_dim → h → h → n_attr with ReLU (the code: h = 1000)."""

    def __init__(self, z_dim: int, hidden: int, n_attr: int) -> None:
        super().__init__()
        self.net = nn.Sequential(*linear_block(z_dim, hidden, act="relu"), *linear_block(hidden, hidden, act="relu"),
                                 nn.Linear(hidden, n_attr))

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z)


def reparameterise(mu: Tensor, logvar: Tensor) -> Tensor:
    """z = μ + exp(log σ² / 2) · ε, ε ~ N(0, I) (§2.1)."""
    return mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)


@register
class IFcVAEGAN(Model):
    name = "ifcvae-gan"
    paper = "Creswell et al., Adversarial Information Factorization (IFcVAE-GAN), 2018"
    supervision = "one or more attributes"
    layout = "y_hat (one sigmoid unit per attribute) + identity z (VAE mean)"
    operations = frozenset({"encode", "decode", "reconstruct", "edit", "traverse"})

    @dataclass
    class Config:
        attributes: tuple[str, ...] = ()  # attributes ŷ carries (empty: all of the dataset's)
        z_dim: positive() = 100  # nz (code)
        width: positive() = 64  # fSize (code)
        aux_hidden: positive() = 1000  # A_ψ's hidden width (code)
        arch: Literal["dcgan", "resnet"] = "dcgan"  # §3.2 | the residual layout of §4.3 (ours)
        alpha_kl: nonnegative(float) = 0.2  # α, eq. 4 (Table 1)
        rho: nonnegative(float) = 0.1  # ρ, eq. 4 (Table 1)
        delta_gan: nonnegative(float) = 0.1  # δ, eqs. 3–4 (Table 1)
        lambda_aux: nonnegative(float) = 1.0  # weight of L_aux in eq. 6 (paper: 1; 0 = naive cVAE-GAN)
        beta_rec_class: nonnegative(float) = 0.0  # class loss on x̂ (Table 1 row 3; code default 1)
        decoder_y: Literal["y_hat", "label"] = "y_hat"  # what the decoder reads in training: ŷ (Alg. 1) | y (Bao)
        reduction: Literal["paper", "code"] = "paper"
        g_loss: Literal["minimax", "nonsaturating"] = "minimax"  # eqs. 3–4 as written | the code
        y_head: Literal["trunk", "detached"] = "trunk"  # the paper | the code (h.detach())
        aux_input: Literal["same", "fresh", "mean"] = "same"  # the paper | the code | μ
        d_rmsprop: Literal["paper", "code"] = "paper"  # momentum 0.5 | alpha 0.9 (the code's flag)
        lr: positive(float) = 2e-4  # RMSprop, every player (code)
        aux_objective: Literal["maximise", "confuse", "confuse_prior"] = "maximise"  # eq. 6 | ours: vs ½ | vs the marginal
        edit_output: Literal["decoded", "residual", "masked"] = "decoded"  # base.EDIT_OUTPUT_DOC (ours; paper: decoded)
        prior_code: Literal["normal", "batch"] = "normal"  # C's third source decodes z ~ N(0, I) (the paper) | another image's ẑ (ours)
        c_labels: Literal["none", "projection"] = "none"  # C reads images only (the paper) | and y, projected (ours)
        lambda_fm: nonnegative(float) = 0.0  # weight of the feature-matching term on x̂ in C's layers (ours; 0 = the paper)

    def __init__(self, config: "IFcVAEGAN.Config", info) -> None:
        super().__init__(config, info)
        c = config
        self.attr_names = resolve_attributes(info, c.attributes)
        self.attr_index = [info.attribute_index(a) for a in self.attr_names]
        k, resnet = len(self.attr_names), c.arch == "resnet"
        self.encoder = Encoder(info.channels, info.size, c.width, c.z_dim, k, resnet, c.y_head)
        self.decoder = Decoder(k + c.z_dim, info.channels, info.size, c.width, resnet)
        self.aux = Auxiliary(c.z_dim, c.aux_hidden, k)
        unused = [f"model.{n}={getattr(c, n)}" for n, off in (("prior_code", "normal"), ("c_labels", "none"), ("lambda_fm", 0.0))
                  if getattr(c, n) != off]
        if not c.delta_gan and unused:  # these switches act through C, which δ = 0 does not build
            raise UsageError(f"{self.name}: {', '.join(unused)} change(s) the discriminator C, but model.delta_gan=0 "
                             "builds no C; drop them or set delta_gan > 0")
        if c.delta_gan:
            self.discriminator = Discriminator(info.channels, info.size, c.width, resnet,
                                               k if c.c_labels == "projection" else 0)
        if c.aux_objective == "confuse_prior":  # Σ y and the count so far: the labels' marginal rate
            self.register_buffer("label_sum", torch.zeros(k))
            self.register_buffer("label_count", torch.zeros(()))

    # --- configuration ---------------------------------------------------------------------
    @classmethod
    def check_data(cls, info) -> None:
        require_binary_attributes(cls.name, info, "try faces, celeba or a folder with attributes; mddae edits classes")
        if info.size % 16:
            raise UsageError(f"{cls.name}: image size {info.size} must be divisible by 16 (four stride-2 layers)")

    @classmethod
    def presets(cls, info) -> dict[str, dict[str, Any]]:
        # paper: Table 1 (DCGAN; ρ = 0.1, δ = 0.1, α = 0.2) with the code's reductions, losses and
        # D optimiser, one attribute (Smiling) where the data has it; batch 64, 10 epochs of CelebA
        smiling = ("Smiling",) if "Smiling" in info.attributes else ()
        paper = {"model.attributes": smiling, "model.z_dim": 100, "model.width": 64, "model.aux_hidden": 1000,
                 "model.reduction": "code", "model.g_loss": "nonsaturating", "model.y_head": "detached",
                 "model.aux_input": "fresh", "model.d_rmsprop": "code", "model.lr": 2e-4,
                 "train.batch_size": 64, "train.steps": 31650}  # 10 epochs of 202,599 − 100 images / 64
        # fast (docs/results.md §11): α = δ = 0.005 (the paper's residual model, §4.4 / Table 3; with
        # Table 1's α = 0.2, δ = 0.1 the small network reaches 16.8 dB after 1,000 steps, with 0.005
        # 19.7 dB); the paper's per-element means with ρ = 1 (§4.4's text) — under the code's sums the
        # reconstruction outweighs L_class and L_aux 96× per image at batch 32, ŷ stays at chance
        # (Acc(E_y) = the majority rate) and no edit works; with means ŷ reads every attribute.
        # aux_objective=confuse_prior: eq. 6's unbounded maximisation blew up σ of ẑ in a fast run, and
        # confusion against ½ emptied ẑ (16.3 dB, one face for all); against the marginal 19.8 dB (§11)
        fast = {"model.z_dim": 32, "model.width": 16, "model.aux_hidden": 256, "model.lr": 5e-4,
                "model.alpha_kl": 0.005, "model.delta_gan": 0.005, "model.rho": 1.0,
                "model.reduction": "paper", "model.g_loss": "nonsaturating", "model.aux_input": "fresh",
                "model.aux_objective": "confuse_prior",
                "model.d_rmsprop": "code", "train.batch_size": 32, "train.steps": 3000}
        return {"fast": fast, "paper": paper}

    def edit_attributes(self) -> list[str]:
        return list(self.attr_names)

    def _carried(self, attribute: str) -> str:
        """``attribute`` as ŷ names it (any case); the dataset's error for an unknown name, ours for one
        the model was not trained on."""
        name = self.info.attributes[self.info.attribute_index(attribute)]
        if name not in self.attr_names:
            raise UsageError(f"{self.name} was trained to edit {', '.join(self.attr_names)}, not {attribute!r} "
                             "(model.attributes)")
        return name

    # --- the losses (each next to its equation) ----------------------------------------------------
    def _sum(self) -> bool:
        return self.config.reduction == "code"

    def rec_loss(self, logits: Tensor, x: Tensor) -> Tensor:
        """L_rec = L_bce(x̂, x) (§3.1): mean over every element (paper) or Σ / (H·W) (code)."""
        if self._sum():
            return F.binary_cross_entropy_with_logits(logits, x, reduction="sum") / (x.shape[-1] * x.shape[-2])
        return F.binary_cross_entropy_with_logits(logits, x)

    def kl_loss(self, mu: Tensor, logvar: Tensor) -> Tensor:
        """L_KL = KL[N(μ, σ²) ‖ N(0, I)] = ½ Σ (μ² + σ² − 1 − log σ²) (eq. 4): a mean over batch and
        dims (paper) or summed over the batch and averaged over dims (code)."""
        kl = 0.5 * (mu.pow(2) + logvar.exp() - 1 - logvar)
        return kl.sum() / mu.shape[1] if self._sum() else kl.mean()

    @staticmethod
    def class_loss(y_logits: Tensor, y: Tensor) -> Tensor:
        """L_class = L_bce(ŷ, y) (eq. 4), a mean in paper and code; also the class loss on x̂."""
        return F.binary_cross_entropy_with_logits(y_logits, y)

    @staticmethod
    def aux_loss(aux_logits: Tensor, y: Tensor) -> Tensor:
        """L_aux = L_bce(A_ψ(ẑ), y) (eq. 5): A_ψ minimises it, the encoder maximises it (eq. 6)."""
        return F.binary_cross_entropy_with_logits(aux_logits, y)

    def gan_d_loss(self, real: Tensor, rec: Tensor, prior: Tensor) -> Tensor:
        """L_gan, C's side (§3.1, Bao et al.): ⅓[bce(1, C(x)) + bce(0, C(x̂)) + bce(0, C(D(z, y)))]
        of means (paper) or 0.3·(the three sums) (code)."""
        if self._sum():
            return 0.3 * (adv.real_loss(real, "sum") + adv.fake_loss(rec, "sum") + adv.fake_loss(prior, "sum"))
        return (adv.real_loss(real) + adv.fake_loss(rec) + adv.fake_loss(prior)) / 3

    def gan_g_loss(self, rec: Tensor, prior: Tensor) -> Tensor:
        """What the decoder and encoder minimise for the GAN, to be weighted by δ (eqs. 3–4):
        ``minimax`` −L_gan (its C(x) term is constant in θ, φ and left out);
        ``nonsaturating`` w·[bce(1, C(x̂)) + bce(1, C(D(z, y)))], w = ⅓ (means) or ½ (code's sums)."""
        if self.config.g_loss == "minimax":
            if self._sum():
                return -0.3 * (adv.fake_loss(rec, "sum") + adv.fake_loss(prior, "sum"))
            return -(adv.fake_loss(rec) + adv.fake_loss(prior)) / 3
        if self._sum():
            return 0.5 * (adv.real_loss(rec, "sum") + adv.real_loss(prior, "sum"))
        return (adv.real_loss(rec) + adv.real_loss(prior)) / 3

    # --- the players, in the authors' order: VAE (θ, φ), A_ψ, C ---------------------------------
    def labels(self, batch) -> Tensor:
        return batch["attributes"][:, self.attr_index].float()

    def configure_optimizers(self):
        c = self.config
        opts = {"autoencoder": torch.optim.RMSprop([*self.encoder.parameters(), *self.decoder.parameters()], lr=c.lr),
                "aux": torch.optim.RMSprop(self.aux.parameters(), lr=c.lr)}
        if c.delta_gan:
            d = {"alpha": 0.9} if c.d_rmsprop == "code" else {"momentum": 0.5}
            opts["discriminator"] = torch.optim.RMSprop(self.discriminator.parameters(), lr=c.lr, **d)
        return opts

    def forward_pass(self, x: Tensor, y: Tensor) -> dict[str, Tensor]:
        """Alg. 1 lines 4–8: ẑ, ŷ = E(x); x̂ = D(ŷ, ẑ); the prior sample D(z, y), z ~ N(0, I) or
        (``prior_code=batch``) the previous image's ẑ; what A_ψ reads (``aux_input``)."""
        mu, logvar, y_logits = self.encoder(x)
        z = reparameterise(mu, logvar)
        y_dec = y if self.config.decoder_y == "label" else torch.sigmoid(y_logits)
        rec_logits = self.decoder(torch.cat([y_dec, z], 1))
        # prior_code=batch: the previous image's detached ẑ draw (the aggregate posterior), read with this image's y
        # (drawn only with C, so the random stream of a run without L_gan is the one it always was)
        prior_logits = None
        if self.config.delta_gan:
            z_prior = torch.randn_like(z) if self.config.prior_code == "normal" else z.detach().roll(1, 0)
            prior_logits = self.decoder(torch.cat([y, z_prior], 1))
        kind = self.config.aux_input
        z_aux = z if kind == "same" else mu if kind == "mean" else reparameterise(mu, logvar)
        return {"mu": mu, "logvar": logvar, "y_logits": y_logits, "z_aux": z_aux, "rec_logits": rec_logits,
                "prior_logits": prior_logits}

    def autoencoder_loss(self, x: Tensor, y: Tensor, f: dict[str, Tensor]) -> dict[str, Tensor]:
        """L_rec + α L_KL + ρ L_class + β L_class(x̂) + δ·(G side of L_gan) − λ_aux L_aux: its
        gradient is ∇θ L_dec (eq. 3) in the decoder and ∇φ L_IFcVAE-GAN (eq. 6) in the encoder."""
        c = self.config
        out = {"rec": self.rec_loss(f["rec_logits"], x), "kl": self.kl_loss(f["mu"], f["logvar"]),
               "class": self.class_loss(f["y_logits"], y)}
        aux_logits = self.aux(f["z_aux"])
        if c.aux_objective.startswith("confuse"):  # ours: drive A_ψ to chance, a bounded objective (adversarial.confusion_loss)
            out["aux_enc"] = adv.confusion_loss(aux_logits, self.label_prior() if c.aux_objective == "confuse_prior" else 0.5)
            total = out["rec"] + c.alpha_kl * out["kl"] + c.rho * out["class"] + c.lambda_aux * out["aux_enc"]
        else:  # eq. 6: the encoder maximises L_aux
            out["aux_enc"] = self.aux_loss(aux_logits, y)
            total = out["rec"] + c.alpha_kl * out["kl"] + c.rho * out["class"] - c.lambda_aux * out["aux_enc"]
        if c.beta_rec_class:
            out["class_rec"] = self.class_loss(self.encoder(torch.sigmoid(f["rec_logits"]))[2], y)
            total = total + c.beta_rec_class * out["class_rec"]
        if c.delta_gan:
            # C sees each source as its own batch, here and in its own step (the authors' code; with
            # arch=resnet its BatchNorm would otherwise mix real and fake statistics)
            d = self.discriminator
            rec, rec_feats = d(torch.sigmoid(f["rec_logits"]), y, features=True)
            out["gan_g"] = self.gan_g_loss(rec, d(torch.sigmoid(f["prior_logits"]), y))
            total = total + c.delta_gan * out["gan_g"]
            if c.lambda_fm:
                with torch.no_grad():
                    real_feats = d(x, y, features=True)[1]
                # L_fm = Σ_i mean |C_i(x̂) − C_i(x)| over C's conv layers (ours; adversarial.feature_matching_loss)
                out["fm"] = adv.feature_matching_loss(rec_feats, real_feats)
                total = total + c.lambda_fm * out["fm"]
        out["autoencoder"] = total
        return out

    def autoencoder_step(self, x: Tensor, y: Tensor, f: dict[str, Tensor], opt) -> dict[str, Tensor]:
        """Alg. 1 lines 11–12: θ ← RMSprop(∇θ L_dec), φ ← RMSprop(∇φ L_IFcVAE-GAN)."""
        losses = self.autoencoder_loss(x, y, f)
        opt.step("autoencoder", losses["autoencoder"])
        return {k: v.detach() for k, v in losses.items()}

    def aux_step(self, y: Tensor, f: dict[str, Tensor], opt) -> dict[str, Tensor]:
        """Alg. 1 line 14: ψ ← RMSprop(∇ψ L_aux) on the detached ẑ of the same forward pass."""
        loss = self.aux_loss(self.aux(f["z_aux"].detach()), y)
        opt.step("aux", loss)
        return {"aux": loss.detach()}

    def discriminator_step(self, x: Tensor, y: Tensor, f: dict[str, Tensor], opt) -> dict[str, Tensor]:
        """Alg. 1 line 13: χ minimises L_gan on real x, the reconstruction and the prior sample."""
        d = self.discriminator  # every source with the batch's labels (read under c_labels=projection)
        real, rec, prior = d(x, y), d(torch.sigmoid(f["rec_logits"].detach()), y), d(torch.sigmoid(f["prior_logits"].detach()), y)
        loss = self.gan_d_loss(real, rec, prior)
        opt.step("discriminator", loss)
        with torch.no_grad():
            d_fake = torch.sigmoid(torch.cat([rec, prior])).mean()
        return {"discriminator": loss.detach(), "d_real": torch.sigmoid(real).mean().detach(), "d_fake": d_fake}

    def label_prior(self) -> Tensor:
        """Each attribute's rate among the training labels seen so far, (Σ y + 1) / (n + 2) (Laplace:
        never exactly 0 or 1); the target of ``aux_objective=confuse_prior``."""
        return (self.label_sum + 1) / (self.label_count + 2)

    def train_step(self, batch, step, opt):
        x, y = batch["image"], self.labels(batch)
        if self.config.aux_objective == "confuse_prior":
            self.label_sum += y.sum(0)
            self.label_count += len(y)
        f = self.forward_pass(x, y)
        losses = self.autoencoder_step(x, y, f, opt)
        losses.update(self.aux_step(y, f, opt))
        if self.config.delta_gan:
            losses.update(self.discriminator_step(x, y, f, opt))
        return losses

    # --- user-facing operations ------------------------------------------------------------
    def encode(self, images: Tensor) -> Code:
        """[ŷ, μ] with parts ``y``, ``z`` and one per attribute; log σ² in ``extras``."""
        mu, logvar, y_logits = self.encoder(self.check_images(images))
        k = len(self.attr_names)
        slices = {"y": slice(0, k), "z": slice(k, k + mu.shape[1])}
        slices.update({a: slice(i, i + 1) for i, a in enumerate(self.attr_names)})
        return Code(torch.cat([torch.sigmoid(y_logits), mu], 1), slices, {"logvar": logvar})

    def decode(self, code: Code) -> Tensor:
        return torch.sigmoid(self.decoder(code.tensor))

    @torch.no_grad()
    def edit(self, images: Tensor, attribute: str, value=1.0, use_mean: bool = True, **kwargs: Any) -> Tensor:
        """Keep ẑ, set ŷ_attribute to ``value`` (0 and 1 are the attribute's two modes, §3.3; a
        number or one per image) and decode. ``use_mean=False`` samples ẑ as the authors' code."""
        self.require("edit")
        if kwargs:
            raise UsageError(f"{self.name}.edit: unknown option(s) {', '.join(sorted(kwargs))}; it takes use_mean")
        attribute = self._carried(attribute)
        code = self.encode(images)
        if not use_mean:
            code = code.with_part("z", reparameterise(code["z"], code.extras["logvar"]))
        values = torch.as_tensor(value, dtype=code.tensor.dtype, device=code.tensor.device)
        if values.dim() > 1 or (values.dim() == 1 and len(values) != len(code)):
            raise UsageError(f"edit value must be a number or one number per image ({len(code)}), "
                             f"got shape {tuple(values.shape)}")
        return self._output(images, code, code.with_part(attribute, values.expand(len(code)).reshape(-1, 1)))

    def _output(self, images: Tensor, code: Code, edited: Code) -> Tensor:
        """The decoded edit, or the input plus the decoder's change (``edit_output=residual``), or
        that change weighed by its own magnitude (``masked``)."""
        out = self.decode(edited)
        if self.config.edit_output == "decoded":
            return out
        rec = self.decode(code)
        mask = change_mask(out - rec) if self.config.edit_output == "masked" else None
        return residual_output(self.check_images(images), out, rec, mask)

    @torch.no_grad()
    def edit_many(self, images: Tensor, values: dict[str, float]) -> Tensor:
        """Several ŷ units set at once, ẑ kept, one decode."""
        self.require("edit")
        code = edited = self.encode(images)
        for attribute, value in values.items():
            edited = edited.with_part(self._carried(attribute), torch.full((len(code), 1), float(value), device=code.tensor.device))
        return self._output(images, code, edited)

    @torch.no_grad()
    def attribute_values(self, images: Tensor) -> dict[str, Tensor]:
        code = self.encode(images)
        return {a: code[a][:, 0] for a in self.attr_names}

    def edit_range(self, attribute: str) -> tuple[float, float]:
        """ŷ is a number the decoder reads: past its modes 0 and 1 the edit is stronger and costs
        identity (results §11, "edit strength": 1 + s to add, −s to remove; s = 1 is measured)."""
        return -1.0, 2.0

    def traversal_range(self, dim: int, codes: Tensor | None = None) -> tuple[float, float]:
        if dim < len(self.attr_names):
            return 0.0, 1.0
        return super().traversal_range(dim, codes)

    def dimension_label(self, dim: int) -> str:
        k = len(self.attr_names)
        return f" (ŷ {self.attr_names[dim]})" if dim < k else f" (z {dim - k})"

    def visuals(self, batch):
        x = batch["image"][:8]
        rows = {"input": x, "reconstruction": self.reconstruct(x)}
        a = self.attr_names[0]
        rows[f"{a}=1"], rows[f"{a}=0"] = self.edit(x, a, 1.0), self.edit(x, a, 0.0)
        return rows


@register
class CVAEGAN(IFcVAEGAN):
    """The naive cVAE-GAN of the paper (§4: "trained without an L_aux term"; Tables 1–3), after
    Bao et al.: the decoder trained on the true label, a class loss on the reconstruction."""

    name = "cvae-gan"
    paper = "naive cVAE-GAN baseline of Creswell et al. after Bao et al. 2017: no L_aux, decoder on y, class loss on x̂"

    @dataclass
    class Config(IFcVAEGAN.Config):
        lambda_aux: nonnegative(float) = 0.0
        decoder_y: Literal["y_hat", "label"] = "label"
        beta_rec_class: nonnegative(float) = 1.0

    @classmethod
    def presets(cls, info):
        p = IFcVAEGAN.presets.__func__(cls, info)
        for preset in p.values():
            preset.update({"model.lambda_aux": 0.0, "model.decoder_y": "label", "model.beta_rec_class": 1.0})
        return p
