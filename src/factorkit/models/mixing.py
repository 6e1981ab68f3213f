"""Mixing autoencoder (Hu, Szabó, Portenier, Favaro & Zwicker, CVPR 2018) and its ablations.

The encoder maps an image to n chunks of d features, ``f = [f¹ … fⁿ]``. Training mixes the
chunks of two independent images with a Bernoulli mask, decodes the mix, re-encodes it and
"unmixes" — the unmixed image must be the first input again (methods.md §4.2, eq. 1):

    f1 = Enc(x1), f2 = Enc(x2),  m = [m¹·1_d … mⁿ·1_d],  mⁱ ~ Bernoulli(0.5)
    f12 = m⊙f1 + (1−m)⊙f2,  x3 = Dec(f12)                  (mix)
    f31 = m⊙Enc(x3) + (1−m)⊙f1,  x4 = Dec(f31)             (unmix)
    L_M = E |x4 − x1|²                                      (eq. 1)

plus a GAN term on the mixed image x3 (eq. 2) and a classifier that must tell, from (x1, x2, x3)
stacked on channels, which chunks of x3 came from x2 (eq. 3) — minimised by Enc, Dec *and* Cls
(eq. 4), which stops the decoder from ignoring chunks (the "shortcut"). Players are updated in
the authors' order (§4.7): G (Enc+Dec), then Cls, then D — each on a freshly drawn batch and mask.

Switches (methods.md §4.10):

* ``terms`` — the rows of the paper's Table 2: ``AE``, ``C+G``, ``AE+C+G``, ``MIX``, ``MIX+C``,
  ``MIX+G``, ``MIX+C+G`` (the full model). ``AE`` is plain reconstruction of x1.
* ``weights`` — ``paper``: w_mix = λ_M, w_gan = λ_G, w_cls = λ_C; ``code``: the authors'
  Sprites code, 10·AE(x2) + 10·MIX + 1·GAN + 1·CLS (their AE(x1) weight is 0 at HEAD, §4.5).
* ``mask`` — ``per_batch`` (the authors' code: one mask per minibatch) or ``per_sample``.
* the ``mixing-ae`` baseline: terms ``AE`` and one chunk of the same total size n·d.

Stabilisers of the adversarial term — not in the paper, off in every preset (docs/results.md §10:
on shapes2d the discriminator separates real from decoded images within 200 steps and the decoder
collapses):

* ``r1_gamma`` — the R1 penalty (γ/2)·E‖∇ₓD(x)‖² on real images (Mescheder et al. 2018, eq. 9),
  added to D's loss;
* ``instance_noise`` — σ of Gaussian noise added to every image the discriminator sees, real and
  mixed, in D's and in G's step (Sønderby et al. 2017; Arjovsky & Bottou 2017), annealed linearly
  to 0 over ``instance_noise_steps`` steps (0: constant).

Images are scaled to [−1, 1] (tanh decoder) as in the authors' code; all losses are means.
x2 is the batch rolled by one (pairs (x1ᵢ, x1ᵢ₋₁) are independent samples), so one encoder pass
serves both inputs.
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
from ..nn.blocks import conv_block, linear_block, scaled
from .base import Code, Model, images_to_signed, signed_to_images
from .registry import register

Tensor = torch.Tensor

TERMS = ("AE", "C+G", "AE+C+G", "MIX", "MIX+C", "MIX+G", "MIX+C+G")


# --- networks (methods.md §4.6, paper Table 1), from nn/blocks.py ---------------------------------


class Encoder(nn.Module):
    """64 px: c64k3s2-c128k3s2-c256k3s2-c512k3s2-c512k2-f (Table 1, CelebA DCGAN / Sprites);
    28/32 px: c64k3s2-c128k3s2-c256k3s2-f (MNIST). Norm + LReLU(0.2) after each conv; the final
    FC is followed by LReLU as in the authors' code (§4.1)."""

    def __init__(self, channels: int, size: int, out_dim: int, width: float, norm: str) -> None:
        super().__init__()
        plan = [64, 128, 256, 512] if size >= 64 else [64, 128, 256]
        layers: list[nn.Module] = []
        c_in, s = channels, size
        for c in plan:
            c = scaled(c, width)
            layers += conv_block(c_in, c, 3, 2, 1, norm=norm, act="lrelu")
            c_in, s = c, (s + 1) // 2
        if size >= 64:  # c512k2 (VALID)
            c = scaled(512, width)
            layers += conv_block(c_in, c, 2, 1, 0, norm=norm, act="lrelu")
            c_in, s = c, s - 1
        self.conv = nn.Sequential(*layers)
        self.fc = nn.Sequential(nn.Flatten(), *linear_block(c_in * s * s, out_dim, act="lrelu"))

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.conv(x))


class Decoder(nn.Module):
    """From the feature reshaped to 1×1: d512k4 (→4×4, no norm) then stride-2 transposed convs
    up to the image size (64: 4→8→16→32→64, the last one d·k2s2; 32: 4→8→16→32; 28: 4→7→14→28,
    §4.6 shape notes); tanh output."""

    def __init__(self, in_dim: int, channels: int, size: int, width: float, norm: str) -> None:
        super().__init__()
        plan = [512, 256, 128] if size >= 64 else [256, 128]
        c0 = scaled(512, width)
        layers: list[nn.Module] = [nn.Unflatten(1, (in_dim, 1, 1)), *conv_block(in_dim, c0, 4, 1, 0, act="lrelu", transpose=True)]
        c_in, s = c0, 4
        for i, c in enumerate(plan):
            c = scaled(c, width)
            if size == 28 and i == 0:  # 4 → 7
                layers += conv_block(c_in, c, 3, 2, 1, norm=norm, act="lrelu", transpose=True)
                s = 7
            else:
                layers += conv_block(c_in, c, 4, 2, 1, norm=norm, act="lrelu", transpose=True)
                s *= 2
            c_in = c
        layers += conv_block(c_in, channels, 2, 2, 0, act="tanh", transpose=True)  # d3k2 (stride 2)
        s *= 2
        if s != size:
            raise UsageError(f"mixing: no decoder layout for image size {size} (supported: 28, 32, 64)")
        self.net = nn.Sequential(*layers)

    def forward(self, f: Tensor) -> Tensor:
        return self.net(f)


class Discriminator(nn.Module):
    """c64k3s2-c128k3s2-c256k3s2-c512(k1)-f + LReLU after each conv. ``norm="batch"``: BN after
    each conv (authors' code); ``"spectral"``: spectral normalisation of every layer instead."""

    def __init__(self, channels: int, size: int, width: float, norm: str = "batch") -> None:
        super().__init__()
        kw = {"norm": "batch" if norm == "batch" else "none", "act": "lrelu", "spectral": norm == "spectral"}
        layers: list[nn.Module] = []
        c_in, s = channels, size
        for c in (64, 128, 256):
            c = scaled(c, width)
            layers += conv_block(c_in, c, 3, 2, 1, **kw)
            c_in, s = c, (s + 1) // 2
        c = scaled(512, width)
        layers += [*conv_block(c_in, c, 1, **kw), nn.Flatten(), *linear_block(c * s * s, 1, spectral=kw["spectral"])]
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x).squeeze(1)  # logits


class ChunkClassifier(nn.Module):
    """AlexNet with BN after each conv (ReLU then BN, as the authors' ``ops_alex.conv``), no
    dropout: c96k8s2-p-c256k5(g2)-p-c384k3-c384k3(g2)-c256k3(g2)-p-f4096-f4096-f(n).

    Input: x1, x2, x3 concatenated on channels in that order (3·C channels). Padding keeps the
    layout valid for 28–64 px inputs (the authors' 60-px code used VALID padding)."""

    def __init__(self, channels: int, size: int, n_chunks: int, width: float) -> None:
        super().__init__()
        w = lambda c: max(8, int(round(c * width / 2)) * 2)  # noqa: E731 — even, for groups=2
        c1, c2, c3, c4, c5, fc = w(96), w(256), w(384), w(384), w(256), scaled(4096, width)

        def conv(ci, co, k, s=1, g=1):
            pad = k // 2 - (1 if k % 2 == 0 else 0)
            return conv_block(ci, co, k, s, pad, groups=g, norm="batch", act="relu", order="conv-act-norm")

        pool = lambda: nn.MaxPool2d(3, 2, 1)  # noqa: E731
        self.features = nn.Sequential(
            *conv(3 * channels, c1, 8, 2), pool(),
            *conv(c1, c2, 5, g=2), pool(),
            *conv(c2, c3, 3), *conv(c3, c4, 3, g=2), *conv(c4, c5, 3, g=2), pool(),
        )
        with torch.no_grad():
            flat = self.features(torch.zeros(2, 3 * channels, size, size)).flatten(1).shape[1]
        self.head = nn.Sequential(nn.Flatten(), *linear_block(flat, fc, act="relu"), *linear_block(fc, fc, act="relu"),
                                  nn.Linear(fc, n_chunks))

    def forward(self, x1: Tensor, x2: Tensor, x3: Tensor) -> Tensor:
        return self.head(self.features(torch.cat([x1, x2, x3], 1)))  # logits of P(chunk i of x3 from x2)


# --- mixing ------------------------------------------------------------------------------------------


def chunk_mask(m: Tensor, chunk_size: int) -> Tensor:
    """(B or 1, n) chunk choices → (B or 1, n·d) feature mask: [m¹·1_d, …, mⁿ·1_d]."""
    return m.repeat_interleave(chunk_size, dim=1)


def mix(f_a: Tensor, f_b: Tensor, mask: Tensor) -> Tensor:
    """m⊙f_a + (1−m)⊙f_b — chunks of f_a where the mask is 1, of f_b where it is 0 (eq. 1)."""
    return mask * f_a + (1 - mask) * f_b


@register
class Mixing(Model):
    name = "mixing"
    paper = "Hu, Szabó, Portenier, Favaro & Zwicker, Disentangling factors of variation by mixing them, CVPR 2018"
    supervision = "none"
    layout = "num_chunks chunks of chunk_size features"
    operations = frozenset({"encode", "decode", "reconstruct", "swap", "traverse"})

    @dataclass
    class Config:
        num_chunks: positive() = 8  # n (§4.1)
        chunk_size: positive() = 64  # d: 64 for Sprites/CelebA, 8 for MNIST (§4.1)
        terms: str = "MIX+C+G"  # Table 2 row: AE | C+G | AE+C+G | MIX | MIX+C | MIX+G | MIX+C+G
        weights: Literal["paper", "code"] = "paper"  # §4.5
        lambda_mix: nonnegative(float) = 1.0  # λ_M (CelebA: 30)
        lambda_gan: nonnegative(float) = 1.0  # λ_G
        lambda_cls: nonnegative(float) = 1.0  # λ_C
        lambda_ae: nonnegative(float) = 1.0  # weight of the plain reconstruction in the AE rows
        mask: Literal["per_batch", "per_sample"] = "per_sample"  # code: per_batch (§4.2)
        width: positive(float) = 1.0  # channel multiplier of Enc/Dec/Dsc (1 = Table 1)
        cls_width: positive(float) = 1.0  # channel multiplier of the AlexNet classifier
        norm: Literal["instance", "batch", "none"] = "instance"  # Enc/Dec normalisation (authors' code: instance)
        d_norm: Literal["batch", "spectral", "none"] = "batch"  # discriminator normalisation (code: batch)
        d_lr: nonnegative(float) = 0.0  # discriminator learning rate (0: same as lr)
        r1_gamma: nonnegative(float) = 0.0  # R1 penalty on D's real inputs (not in the paper; 0 = off)
        instance_noise: nonnegative(float) = 0.0  # σ of noise on every D input (not in the paper; 0 = off)
        instance_noise_steps: nonnegative() = 0  # anneal σ linearly to 0 over this many steps (0: constant)
        single_chunk: bool = False  # the `ae` baseline of Table 2: one chunk of n·d
        lr: positive(float) = 2e-4  # Adam, all players (§4.7)
        beta1: float = 0.5
        beta2: float = 0.999
        lr_decay_every: positive() = 20000  # lr × 0.9 every 20k steps (staircase, §4.7)

    def __init__(self, config: "Mixing.Config", info) -> None:
        super().__init__(config, info)
        c = config
        if c.terms not in TERMS:
            raise UsageError(f"mixing: model.terms={c.terms!r} is not a Table 2 row; valid: {', '.join(TERMS)}")
        self.terms = set(c.terms.split("+"))
        self.width_total = c.num_chunks * c.chunk_size
        self.encoder = Encoder(info.channels, info.size, self.width_total, c.width, c.norm)
        self.decoder = Decoder(self.width_total, info.channels, info.size, c.width, c.norm)
        self.w = self.loss_weights()
        if self.w["gan"]:
            self.discriminator = Discriminator(info.channels, info.size, c.width, c.d_norm)
        if self.w["cls"]:
            self.classifier = ChunkClassifier(info.channels, info.size, c.num_chunks, c.cls_width)

    @classmethod
    def check_data(cls, info) -> None:
        if info.size not in (28, 32, 64):
            raise UsageError(f"{cls.name}: image size {info.size} has no layout (supported: 28, 32, 64)")

    @classmethod
    def presets(cls, info) -> dict[str, dict[str, Any]]:
        small = info.size <= 32
        # fast: spectral-norm discriminator — with the authors' batch-norm one the decoder collapses
        # to a single image within 50 steps at width 1/4 (lr 5e-4 and 2e-4; docs/results.md §6)
        fast = {"model.chunk_size": 8, "model.width": 0.25, "model.cls_width": 0.125, "model.lr": 5e-4,
                "model.d_norm": "spectral", "train.batch_size": 32, "train.steps": 3000}
        paper = {"model.chunk_size": 8 if small else 64, "model.width": 1.0, "model.cls_width": 1.0, "model.lr": 2e-4,
                 "model.mask": "per_batch", "train.batch_size": 64, "train.steps": 50000 if small else 100000}
        if info.channels == 3 and not small:
            # CelebA-like data: λ_M = 30 (§4.5) in both presets — with λ_M = 1 the adversarial term
            # dominates on 64² RGB faces and the decoder collapses to one image (measured,
            # docs/results.md §6); the AE rows' reconstruction term gets the same weight.
            for preset in (fast, paper):
                preset.update({"model.lambda_mix": 30.0, "model.lambda_ae": 30.0})
        return {"fast": fast, "paper": paper}

    def loss_weights(self) -> dict[str, float]:
        """Effective weights of (ae1 = |Dec(Enc(x1)) − x1|², ae2 = same for x2, mix, gan, cls)."""
        c, t = self.config, self.terms
        if c.weights == "code":  # authors' Sprites code at HEAD (§4.5)
            return {"ae1": c.lambda_ae if "AE" in t else 0.0, "ae2": 10.0 if "MIX" in t else 0.0,
                    "mix": 10.0 if "MIX" in t else 0.0, "gan": 1.0 if "G" in t else 0.0, "cls": 1.0 if "C" in t else 0.0}
        return {"ae1": c.lambda_ae if "AE" in t else 0.0, "ae2": 0.0, "mix": c.lambda_mix if "MIX" in t else 0.0,
                "gan": c.lambda_gan if "G" in t else 0.0, "cls": c.lambda_cls if "C" in t else 0.0}

    # --- training ------------------------------------------------------------------------------
    def configure_optimizers(self):
        c = self.config
        adam = lambda params, lr=c.lr: torch.optim.Adam(params, lr=lr, betas=(c.beta1, c.beta2))  # noqa: E731
        opts = {"generator": adam(list(self.encoder.parameters()) + list(self.decoder.parameters()))}
        if self.w["cls"]:
            opts["classifier"] = adam(self.classifier.parameters())
        if self.w["gan"]:
            opts["discriminator"] = adam(self.discriminator.parameters(), c.d_lr or c.lr)
        return opts

    def configure_schedulers(self, optimizers, steps):
        every = self.config.lr_decay_every
        return {k: torch.optim.lr_scheduler.StepLR(o, step_size=every, gamma=0.9) for k, o in optimizers.items()}

    def sample_mask(self, batch: int, device) -> Tensor:
        """(B or 1, n) Bernoulli(0.5) chunk choices: 1 = chunk from x1, 0 = from x2."""
        rows = batch if self.config.mask == "per_sample" else 1
        return torch.randint(0, 2, (rows, self.config.num_chunks), device=device).float()

    def mixed(self, x1: Tensor, f1: Tensor | None = None) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        """x1 in [−1, 1] → (x2, f1, chunk choices m, mask, x3 = Dec(m⊙f1 + (1−m)⊙f2))."""
        f1 = self.encoder(x1) if f1 is None else f1
        x2, f2 = x1.roll(1, 0), f1.roll(1, 0)
        m = self.sample_mask(len(x1), x1.device)
        mask = chunk_mask(m, self.config.chunk_size)
        return x2, f1, m, mask, self.decoder(mix(f1, f2, mask))

    def mix_loss(self, x1: Tensor, f1: Tensor, mask: Tensor, x3: Tensor) -> Tensor:
        # eq. 1: unmix — chunks of Enc(x3) that came from x1 back with x1's others — must decode to x1
        x4 = self.decoder(mix(self.encoder(x3), f1, mask))
        return ((x4 - x1) ** 2).mean()

    @staticmethod
    def gan_loss(d_fake: Tensor) -> Tensor:
        # eq. 2, generator side, non-saturating: −log D(x3), from D's logits on x3
        return adv.g_loss(d_fake)

    def classifier_loss(self, x1: Tensor, x2: Tensor, x3: Tensor, m: Tensor) -> Tensor:
        # eq. 3 (paper's typo fixed): y^i = P(chunk i of x3 came from x2), target 1 − m^i
        logits = self.classifier(x1, x2, x3)
        return F.binary_cross_entropy_with_logits(logits, (1 - m).expand_as(logits))

    def noise_sigma(self, step: int) -> float:
        """σ of the instance noise at ``step`` (linear anneal to 0 over instance_noise_steps)."""
        c = self.config
        if not c.instance_noise_steps:
            return c.instance_noise
        return c.instance_noise * max(0.0, 1.0 - step / c.instance_noise_steps)

    def d_input(self, x: Tensor) -> Tensor:
        """What D sees of ``x``: the image itself, or with instance noise of σ = noise_sigma."""
        sigma = getattr(self, "_sigma", self.config.instance_noise)
        return x + sigma * torch.randn_like(x) if sigma > 0 else x

    # --- the players, in the authors' order (§4.7) ------------------------------------------------
    def train_step(self, batch, step, opt):
        self._sigma = self.noise_sigma(step)
        losses = self.generator_step(batch, opt)
        if self.w["cls"]:
            losses.update(self.classifier_step(opt.next_batch(), opt))
        if self.w["gan"]:
            losses.update(self.discriminator_step(opt.next_batch(), opt))
        return losses

    def generator_step(self, batch, opt) -> dict[str, Tensor]:
        """Enc + Dec minimise w_ae·AE + λ_M·L_M (eq. 1) + λ_G·L_G (eq. 2) + λ_C·L_C (eq. 3, as eq. 4)."""
        w = self.w
        x1 = images_to_signed(batch["image"])
        f1 = self.encoder(x1)
        losses: dict[str, Tensor] = {}
        g = x1.new_zeros(())
        if w["ae1"] or w["ae2"]:
            rec = ((self.decoder(f1) - x1) ** 2).mean()  # plain reconstruction (AE rows; code's AE(x2) term)
            losses["ae"] = rec
            g = g + (w["ae1"] + w["ae2"]) * rec  # x2 is x1 rolled: AE(x2) has the same expectation
        if w["mix"] or w["gan"] or w["cls"]:
            x2, _, m, mask, x3 = self.mixed(x1, f1)
            if w["mix"]:
                losses["mix"] = self.mix_loss(x1, f1, mask, x3)  # eq. 1
                g = g + w["mix"] * losses["mix"]
            if w["gan"]:
                losses["gan"] = self.gan_loss(self.discriminator(self.d_input(x3)))  # eq. 2
                g = g + w["gan"] * losses["gan"]
            if w["cls"]:
                losses["cls"] = self.classifier_loss(x1, x2, x3, m)  # eq. 3, minimised by Enc, Dec (eq. 4)
                g = g + w["cls"] * losses["cls"]
        opt.step("generator", g)
        losses["generator"] = g
        return {k: v.detach() for k, v in losses.items()}

    def classifier_step(self, batch, opt) -> dict[str, Tensor]:
        """Cls minimises λ_C·L_C (eq. 3) on a fresh batch and mask, the mixed images held fixed."""
        x1 = images_to_signed(batch["image"])
        with torch.no_grad():
            x2, _, m, _, x3 = self.mixed(x1)
        c_loss = self.classifier_loss(x1, x2, x3, m)
        opt.step("classifier", self.w["cls"] * c_loss)
        return {"classifier": c_loss.detach()}

    def discriminator_step(self, batch, opt) -> dict[str, Tensor]:
        """D minimises λ_G·(the D side of eq. 2) on a fresh batch and mask: real x1, fake x3;
        plus the R1 penalty on the real images when ``r1_gamma`` > 0."""
        x1 = images_to_signed(batch["image"])
        with torch.no_grad():
            x3 = self.mixed(x1)[4]
        real = self.d_input(x1)
        gamma = self.config.r1_gamma
        if gamma:
            real = real.detach().requires_grad_(True)
        real_logits = self.discriminator(real)
        d_loss = adv.d_loss(real_logits, self.discriminator(self.d_input(x3)))
        out = {"discriminator": d_loss}
        if gamma:
            out["r1"] = adv.r1_penalty(real_logits, real, gamma)
            d_loss = d_loss + out["r1"]
        opt.step("discriminator", self.w["gan"] * d_loss)
        return {k: v.detach() for k, v in out.items()}

    # --- representation and editing --------------------------------------------------------------
    def chunk_names(self) -> list[str]:
        return list(self.chunk_slices())

    def chunk_slices(self) -> dict[str, slice]:
        if self.config.single_chunk:
            return {"chunk0": slice(0, self.width_total)}
        d = self.config.chunk_size
        return {f"chunk{i}": slice(i * d, (i + 1) * d) for i in range(self.config.num_chunks)}

    def retrieval_chunks(self) -> dict[str, slice]:
        return self.chunk_slices()

    def encode(self, images: Tensor) -> Code:
        return Code(self.encoder(images_to_signed(self.check_images(images))), self.chunk_slices())

    def decode(self, code: Code) -> Tensor:
        return signed_to_images(self.decoder(code.tensor))

    def _chunk_mask(self, chunks, width: int, device) -> Tensor:
        slices = self.chunk_slices()
        mask = torch.zeros(1, width, device=device)
        for ch in chunks:
            key = f"chunk{ch}" if isinstance(ch, int) or str(ch).isdigit() else str(ch)
            if key not in slices:
                raise UsageError(f"unknown chunk {ch!r}; {self.name} has chunks 0..{len(slices) - 1}")
            mask[:, slices[key]] = 1
        return mask

    @torch.no_grad()
    def swap(self, images_a: Tensor, images_b: Tensor, chunks, **kwargs: Any) -> Tensor:
        """Decode the listed chunks of a with the rest from b (Figs. 2, 5, 6)."""
        self.require("swap")
        fa, fb = self.encode(images_a), self.encode(images_b)
        if len(fa) != len(fb):
            raise UsageError(f"swap needs as many images in a as in b ({len(fa)} vs {len(fb)})")
        mask = self._chunk_mask(chunks, fa.dim, fa.tensor.device)
        return self.decode(Code(mix(fa.tensor, fb.tensor, mask), fa.slices))

    @torch.no_grad()
    def retrieve(self, query: Tensor, gallery: Tensor, chunks, k: int | None = None) -> tuple[Tensor, Tensor]:
        """Rank ``gallery`` for each query by L2 distance on the listed chunks (Fig. 7):
        returns (indices (Q, k), distances (Q, k)), nearest first."""
        fq, fg = self.encode(query).tensor, self.encode(gallery).tensor
        keep = self._chunk_mask(chunks, fq.shape[1], fq.device)[0].bool()
        dist = torch.cdist(fq[:, keep], fg[:, keep])
        k = k or dist.shape[1]
        d, idx = dist.topk(k, dim=1, largest=False)
        return idx, d

    def dimension_label(self, dim: int) -> str:
        d = self.width_total if self.config.single_chunk else self.config.chunk_size
        return f" (chunk {dim // d})"

    def visuals(self, batch):
        x = batch["image"][:8]
        rows = {"input": x, "reconstruction": self.reconstruct(x)}
        if self.supports("swap") and len(x) > 1:
            rows["swap chunk0 from input, rest from next"] = self.swap(x, x.roll(-1, 0), [0])
        return rows


@register
class MixingAE(Mixing):
    """Table 2's AE baseline: a plain autoencoder whose code is one chunk of the same total size."""

    name = "mixing-ae"
    paper = "baseline of Hu et al. Table 2 'AE': plain autoencoder, one chunk of n·d, same networks"
    layout = "one chunk of num_chunks·chunk_size features"
    operations = frozenset({"encode", "decode", "reconstruct", "traverse"})

    @dataclass
    class Config(Mixing.Config):
        terms: str = "AE"
        single_chunk: bool = True

