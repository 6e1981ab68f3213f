"""UD-GAN and UD-GAN-G (Yildirim, Jetchev, Bergmann & Vollgraf, "Unlabeled Disentangling of GANs
with Guided Siamese Networks", ICLR 2019 submission; methods.md §2). No public code exists: this is
the first implementation, written from the paper alone.

Latent (§3.1, methods.md §2.1). N_A one-dimensional knobs q = [q_1 … q_NA], q ~ U(−1, 1); no other
noise. G maps q to an image (Table 5).

Training step (§3.2). Pick one knob i ~ Cat(N_A) (one per step, for the whole batch); draw
q^(1), q^(2) and build the quadruple x_ab = G([q_i^(a), q_ī^(b)]), a, b ∈ {1, 2} (the first index
says whose q_i the image has). Siamese network φ_i embeds each image; ρ_i(x, x') = ‖φ_i(x) − φ_i(x')‖₂.

    L_φi = ½ Σ_a ρ_i(x_a1, x_a2)²  +  ¼ Σ_n Σ_m max(0, γ_i − ρ_i(x_1n, x_2m))²           (eq. 2)

with the adaptive margin γ_i = ‖q_i^(1) − q_i^(2)‖₂ (``margin=adaptive``; ``fixed``: γ = ``margin_value``).
Images sharing q_i are pulled together, images with different q_i pushed apart in proportion to how
far apart their q_i are. The objective (eq. 3, whose "L_WGAN" is a typo for eq. 1's GAN):

    min_{G, φ} max_D  L_GAN + λ_φ L_φi,    L_GAN non-saturating (``adversarial.d_loss`` / ``g_loss``)

G receives gradients through φ, so G itself is pushed to make q_i's effect readable by φ_i.

Siamese networks and guidance (§3.3–4.3, methods.md §2.4). Unguided knobs share one φ whose output
dimension i is knob i's embedding ("each dimension is still independently evaluated"). With
``guidance`` (UD-GAN-G), the last knobs each get their own φ that reads a guidance function of the
image (:mod:`factorkit.nn.guidance`): ``crops`` (four horizontal bands, faces), ``moments`` (centre
of mass and spread, eq. 8, shapes2d), ``avgcolor`` (average colour of 64 sampled pixels), ``edges``
(Sobel magnitude). An image φ is "the inverted generator"; a scalar φ (moments, colours) is an MLP
1 → 64 → 64 → 1 (methods.md's default).

Representation for the metrics (§5.1): the concatenated siamese outputs φ(x) on real images, one
column per knob (``representation``).

Real-image editing (beyond the paper, which edits samples only). ``inversion=encoder`` trains an
inverter E (same trunk as D, N_A outputs) as a third player on G's own samples, ‖E(G(q)) − q‖²; and
``invert_steps`` > 0 refines E's guess by gradient descent on ‖G(q) − x‖² (q kept in [−1, 1]).
Why an encoder first: one forward pass per image keeps the web editor interactive and lets
``evaluate`` invert thousands of images; the optional refinement buys back identity where the
encoder's guess is off, at a cost chosen per call. ``encode`` returns the inverted knobs, so
``traverse``/``set_dimensions`` move one knob of a user's image. ``edit_output=residual`` returns
the input plus the change the knob makes, x + G(q') − G(q̂), so what the inversion misses of the
face stays (the switch of IFcVAE-GAN and DNA-GAN; samples are unaffected).

Networks (Table 5): FC → width × 4 × 4, then [ConvT 3×3 s2, Conv 3×3] per doubling up to the image
size, Conv 1×1 to the channels; LeakyReLU(0.2) after every layer but the last, no normalisation,
tanh output (images in [−1, 1] inside, [0, 1] outside). ``g_norm=batch`` adds BatchNorm after every
generator layer but the last (DCGAN's generator; not in Table 5, so the ``paper`` preset keeps
``none``): the ``fast`` preset uses it, because without it G drew no shapes in 1,500 CPU steps
(docs/results.md §16). D, φ and E are the generator inverted:
Conv 1×1, then [Conv 3×3, Conv 3×3 s2] per halving down to 4 × 4, FC to the output. Adam lr 2e-4,
β1 = 0.5 (§5); batch, steps and the 1:1 D:G ratio are not given (methods.md's defaults).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from ..config import nonnegative, positive
from ..errors import UsageError
from ..nn import adversarial as adv
from ..nn import guidance as guide
from ..nn.blocks import conv_block, linear_block
from .base import Code, Model, images_to_signed, signed_to_images
from .registry import register

Tensor = torch.Tensor


def _doublings(size: int) -> int:
    k = round(math.log2(size / 4)) if size >= 8 else 0
    if size < 8 or 4 * 2**k != size:
        raise UsageError(f"UD-GAN's layout needs an image size of 4 · 2^k (8, 16, 32, 64, …), got {size}; "
                         "use shapes2d, faces or celeba (64), or resize a folder with --data-option size=64")
    return k


def init_lrelu(module: nn.Module) -> nn.Module:
    """He initialisation for LeakyReLU(0.2), zero biases: std = gain / √fan-in, where a stride-s
    transposed conv's fan-in per output pixel is C_in · k² / s². With no normalisation layers
    (Table 5 has none), PyTorch's default init shrinks the signal layer by layer, so that G's
    first images barely depend on q (std over q ≈ 2e-4 at 64 px; ≈ 0.01 with plain He init)."""
    gain = nn.init.calculate_gain("leaky_relu", 0.2)
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            weight = m.parametrizations.weight.original if nn.utils.parametrize.is_parametrized(m) else m.weight
            if isinstance(m, nn.Linear):
                fan = m.in_features
            elif isinstance(m, nn.ConvTranspose2d):
                fan = m.in_channels * m.kernel_size[0] * m.kernel_size[1] / (m.stride[0] * m.stride[1])
            else:
                fan = m.in_channels * m.kernel_size[0] * m.kernel_size[1]
            with torch.no_grad():
                weight.normal_(0.0, gain / math.sqrt(fan))
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return module


class Generator(nn.Module):
    """Table 5: FC, reshape to width × 4 × 4, [ConvT 3×3 s2, Conv 3×3] × k, Conv 1×1; tanh.
    ``norm="batch"`` puts BatchNorm after every layer but the last (DCGAN's generator; not in Table 5)."""

    def __init__(self, knobs: int, channels: int, size: int, width: int, norm: str = "none") -> None:
        super().__init__()
        n = None if norm == "none" else norm
        self.start = (width, 4, 4)
        self.fc = nn.Sequential(*linear_block(knobs, width * 16, norm=n, act="lrelu"))
        layers: list[nn.Module] = []
        for _ in range(_doublings(size)):
            layers += conv_block(width, width, 3, 2, 1, norm=n, act="lrelu", transpose=True, output_padding=1)
            layers += conv_block(width, width, 3, 1, 1, norm=n, act="lrelu")
        layers += conv_block(width, channels, 1)
        self.conv = nn.Sequential(*layers)
        init_lrelu(self)

    def forward(self, q: Tensor) -> Tensor:
        return torch.tanh(self.conv(self.fc(q).view(-1, *self.start)))


class Trunk(nn.Module):
    """The generator inverted (D, φ and E): Conv 1×1, [Conv 3×3, Conv 3×3 s2] × k, FC → ``out``."""

    def __init__(self, channels: int, size: int, width: int, out: int, spectral: bool = False) -> None:
        super().__init__()
        layers = conv_block(channels, width, 1, act="lrelu", spectral=spectral)
        for _ in range(_doublings(size)):
            layers += conv_block(width, width, 3, 1, 1, act="lrelu", spectral=spectral)
            layers += conv_block(width, width, 3, 2, 1, act="lrelu", spectral=spectral)
        self.features = nn.Sequential(*layers, nn.Flatten())
        self.head = nn.Sequential(*linear_block(width * 16, out, spectral=spectral))
        init_lrelu(self)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


def scalar_phi(d_in: int) -> nn.Module:
    """A siamese network on a guidance vector: MLP d_in → 64 → 64 → 1, LeakyReLU (methods.md §2.4)."""
    return nn.Sequential(*linear_block(d_in, 64, act="lrelu"), *linear_block(64, 64, act="lrelu"),
                         *linear_block(64, 1))


def signed_to_images_unclamped(x: Tensor) -> Tensor:
    """[−1, 1] → [0, 1] without the clamp of ``signed_to_images`` (G's tanh output is in range;
    the guidance functions need its gradient everywhere)."""
    return (x + 1.0) * 0.5


def generator_input(model: Model, code: Code, what: str = "knobs") -> Tensor:
    """``code``'s tensor on the model's device, checked to hold ``model.config.knobs`` columns (the
    input of the Table-5 generator, shared by UD-GAN and InfoGAN)."""
    t, k = code.tensor, model.config.knobs
    if t.dim() != 2 or t.shape[1] != k:
        raise UsageError(f"{model.name}.decode: a code of {k} {what} is needed, got shape {tuple(t.shape)}")
    return t.to(model.device)


def quadruple_codes(q1: Tensor, q2: Tensor, i: int) -> dict[str, Tensor]:
    """§3.2: the knob vectors of x_ab = G([q_i^(a), q_ī^(b)]): knob i from q^(a), the rest from q^(b)."""
    def mix(a: Tensor, b: Tensor) -> Tensor:
        out = b.clone()
        out[:, i] = a[:, i]
        return out

    return {"11": q1, "12": mix(q1, q2), "21": mix(q2, q1), "22": q2}


def pair_distance(e: Tensor, f: Tensor, eps: float = 1e-12) -> Tensor:
    """ρ(x, x') = ‖φ(x) − φ(x')‖₂ per row (ε under the root keeps its gradient finite at 0)."""
    return ((e - f).pow(2).sum(1) + eps).sqrt()


def contrastive_loss(emb: dict[str, Tensor], margin: Tensor) -> Tensor:
    """Eq. 2 for one knob, mean over the quadruples of the batch: ``emb`` maps "ab" → φ_i(x_ab)
    (N, d); ``margin`` is γ_i per quadruple (N,)."""
    similar = 0.5 * sum((emb[f"{a}1"] - emb[f"{a}2"]).pow(2).sum(1) for a in "12")
    dissimilar = 0.25 * sum(torch.relu(margin - pair_distance(emb[f"1{n}"], emb[f"2{m}"])).pow(2)
                            for n in "12" for m in "12")
    return (similar + dissimilar).mean()


@register
class UDGAN(Model):
    name = "udgan"
    paper = "Yildirim, Jetchev, Bergmann & Vollgraf, Unlabeled Disentangling of GANs with Guided Siamese Networks (2019)"
    supervision = "none"
    layout = "N_A one-dimensional knobs q ∈ [−1, 1] (encode: inverted knobs; metrics: the siamese outputs φ(x))"
    operations = frozenset({"encode", "decode", "reconstruct", "traverse", "sample"})

    @dataclass
    class Config:
        knobs: positive() = 10  # N_A (§5: 10 on 2D Shapes, 32 on CelebA)
        width: positive() = 32  # channels of every conv layer (Table 5: 32 on 2D Shapes, 128 on CelebA)
        guidance: Literal["none", "crops", "moments", "avgcolor", "edges"] = "none"  # UD-GAN-G's guided knobs
        lambda_phi: nonnegative(float) = 5.0  # λ_φ, eq. 3 (§5: 5 on 2D Shapes, 1 on CelebA)
        margin: Literal["adaptive", "fixed"] = "adaptive"  # γ_i = |Δq_i| (§3.2) | a constant
        margin_value: positive(float) = 1.0  # γ for margin=fixed
        lr: positive(float) = 2e-4  # Adam, §5
        beta1: float = 0.5
        beta2: float = 0.999  # not given: Adam's default
        spectral: bool = False  # spectral normalisation in D (not in the paper)
        g_norm: Literal["none", "batch"] = "none"  # BatchNorm in G (DCGAN's; Table 5 names no normalisation)
        inversion: Literal["encoder", "none"] = "encoder"  # real-image editing (ours, see the module doc)
        invert_steps: nonnegative() = 0  # gradient steps refining E's guess on ‖G(q) − x‖² in encode
        invert_lr: positive(float) = 0.05
        edit_output: Literal["decoded", "residual"] = "decoded"  # real images: G(q') | x + G(q') − G(q̂) (base doc)
        colour_pixels: positive() = 64  # avgcolor: pixels sampled once (Appendix B does not say how many)

    def __init__(self, config: "UDGAN.Config", info) -> None:
        super().__init__(config, info)
        c = config
        n_guided = guide.GUIDED_KNOBS[c.guidance]
        if n_guided >= c.knobs:
            raise UsageError(f"{self.name}: guidance={c.guidance} steers {n_guided} knobs, so model.knobs must be at "
                             f"least {n_guided + 1} (got {c.knobs}) to leave one unguided")
        if c.guidance == "crops" and info.size % 4:
            raise UsageError(f"{self.name}: guidance=crops needs an image size divisible by 4, got {info.size}")
        self.n_unguided = c.knobs - n_guided
        ch, size = info.channels, info.size
        self.generator = Generator(c.knobs, ch, size, c.width, c.g_norm)
        self.discriminator = Trunk(ch, size, c.width, 1, spectral=c.spectral)
        self.phi = Trunk(ch, size, c.width, self.n_unguided)  # the shared φ of the unguided knobs
        guided: list[nn.Module] = []
        if c.guidance in ("crops", "edges"):
            guided = [Trunk(ch if c.guidance == "crops" else 1, size, c.width, 1) for _ in range(n_guided)]
        elif c.guidance == "moments":
            guided = [scalar_phi(1) for _ in range(n_guided)]
        elif c.guidance == "avgcolor":
            guided = [scalar_phi(ch)]
            gen = torch.Generator().manual_seed(0)
            self.register_buffer("colour_at", guide.sample_pixels(size, min(c.colour_pixels, size * size), gen))
        self.guided_phi = nn.ModuleList(guided)
        self.inverter = Trunk(ch, size, c.width, c.knobs) if c.inversion == "encoder" else None

    # --- configuration -------------------------------------------------------------------------
    @classmethod
    def check_data(cls, info) -> None:
        _doublings(info.size)

    @classmethod
    def presets(cls, info) -> dict[str, dict[str, Any]]:
        faces = info.name in ("faces", "celeba") or info.channels == 3
        if faces:  # §5 CelebA: 32 knobs, 128 channels, λ_φ = 1; fast: 16 knobs, a quarter of the width
            paper = {"model.knobs": 32, "model.width": 128, "model.lambda_phi": 1.0,
                     "train.batch_size": 64, "train.steps": 100_000}
            fast = {"model.knobs": 16, "model.width": 32, "model.lambda_phi": 1.0, "model.g_norm": "batch",
                    "train.batch_size": 16, "train.steps": 3000}
        else:  # §5 2D Shapes: 10 knobs, 32 channels, λ_φ = 5; fast: half the width
            paper = {"model.knobs": 10, "model.width": 32, "model.lambda_phi": 5.0,
                     "train.batch_size": 64, "train.steps": 50_000}
            fast = {"model.knobs": 10, "model.width": 16, "model.lambda_phi": 5.0, "model.g_norm": "batch",
                    "train.batch_size": 16, "train.steps": 3000}
        return {"fast": fast, "paper": paper}

    def configure_optimizers(self):
        c = self.config

        def adam(params):
            return torch.optim.Adam(params, lr=c.lr, betas=(c.beta1, c.beta2))

        opts = {"discriminator": adam(self.discriminator.parameters()),
                "generator": adam([*self.generator.parameters(), *self.phi.parameters(),
                                   *self.guided_phi.parameters()])}
        if self.inverter is not None:
            opts["inverter"] = adam(self.inverter.parameters())
        return opts

    # --- the siamese networks ------------------------------------------------------------------
    def guided_input(self, images: Tensor, g: int) -> Tensor:
        """What guided φ number ``g`` reads of ``images`` ([0, 1]; differentiable)."""
        kind = self.config.guidance
        if kind == "crops":
            return guide.crop_band(images, g)
        if kind == "edges":
            return guide.sobel_magnitude(images)
        if kind == "moments":  # in units of the image size, so the MLP sees O(1) inputs
            m = guide.moments(images)[:, g : g + 1]
            return m / (self.info.size if g < 2 else self.info.size**2)
        return guide.average_colour(images, self.colour_at)

    def knob_embedding(self, images: Tensor, i: int) -> Tensor:
        """φ_i(x): (N, 1) for knob ``i``, images in [0, 1]."""
        if i < self.n_unguided:
            return self.phi(images)[:, i : i + 1]
        g = i - self.n_unguided
        return self.guided_phi[g](self.guided_input(images, g))

    def embeddings(self, images: Tensor) -> Tensor:
        """(N, N_A): every knob's siamese output, unguided first (the representation, §5.1)."""
        parts = [self.phi(images)]
        parts += [net(self.guided_input(images, g)) for g, net in enumerate(self.guided_phi)]
        return torch.cat(parts, 1)

    def margin(self, q1: Tensor, q2: Tensor, i: int) -> Tensor:
        """γ_i per quadruple: |q_i^(1) − q_i^(2)| (adaptive, §3.2) or ``margin_value``."""
        if self.config.margin == "adaptive":
            return (q1[:, i] - q2[:, i]).abs()
        return torch.full_like(q1[:, i], self.config.margin_value)

    # --- the players -----------------------------------------------------------------------------
    def knob_samples(self, n: int) -> Tensor:
        return torch.rand(n, self.config.knobs, device=self.device) * 2 - 1

    def quadruple(self, n: int, i: int) -> tuple[dict[str, Tensor], Tensor, Tensor]:
        """``n`` quadruples for knob ``i``: their knob vectors by "ab", G's 4n images ([−1, 1],
        in the order 11, 12, 21, 22) and γ_i."""
        q1, q2 = self.knob_samples(n), self.knob_samples(n)
        codes = quadruple_codes(q1, q2, i)
        return codes, self.generator(torch.cat(list(codes.values()))), self.margin(q1, q2, i)

    def discriminator_step(self, real: Tensor, fakes: Tensor, opt) -> Tensor:
        """D's side of eq. 1 on B real images and the B fakes drawn for this step (detached)."""
        loss = adv.d_loss(self.discriminator(images_to_signed(real)), self.discriminator(fakes.detach()))
        opt.step("discriminator", loss)
        return loss.detach()

    def generator_step(self, fakes: Tensor, picked: Tensor, i: int, margin: Tensor, opt) -> dict[str, Tensor]:
        """Eq. 3 for G and φ: the non-saturating L_GAN on the ``picked`` fakes + λ_φ L_φi (eq. 2) on
        all four images of every quadruple; G gets gradient through φ."""
        gan = adv.g_loss(self.discriminator(fakes[picked]))
        emb = self.knob_embedding(signed_to_images_unclamped(fakes), i).chunk(4)
        phi = contrastive_loss(dict(zip(("11", "12", "21", "22"), emb)), margin)
        total = gan + self.config.lambda_phi * phi
        opt.step("generator", total)
        return {"gan_g": gan.detach(), "phi": phi.detach(), "generator": total.detach()}

    def inverter_step(self, codes: dict[str, Tensor], fakes: Tensor, opt) -> Tensor:
        """E regresses the knobs of G's own samples: ‖E(G(q)) − q‖² (ours, for real-image editing)."""
        loss = (self.inverter(fakes.detach()) - torch.cat(list(codes.values()))).pow(2).sum(1).mean()
        opt.step("inverter", loss)
        return loss.detach()

    def train_step(self, batch, step, opt):
        real = batch["image"]
        n = len(real)
        i = int(torch.randint(self.config.knobs, ()))  # one knob per step, i ~ Cat(N_A)
        codes, fakes, margin = self.quadruple(n, i)
        picked = torch.randperm(4 * n, device=real.device)[:n]  # D sees B of the 4B fakes
        losses = {"discriminator": self.discriminator_step(real, fakes[picked], opt)}
        losses.update(self.generator_step(fakes, picked, i, margin, opt))
        if self.inverter is not None:
            losses["inverter"] = self.inverter_step(codes, fakes, opt)
        return losses

    # --- user-facing operations --------------------------------------------------------------------
    def _slices(self) -> dict[str, slice]:
        return {f"knob{i}": slice(i, i + 1) for i in range(self.config.knobs)}

    def encode(self, images: Tensor) -> Code:
        """The inverted knobs (E's guess, refined by ``invert_steps`` steps on ‖G(q) − x‖²)."""
        if self.inverter is None:
            raise UsageError(f"{self.name} was trained with model.inversion=none: it cannot encode a real image; "
                             "sample and traverse samples, or train with model.inversion=encoder")
        x = self.check_images(images)
        q = self.inverter(images_to_signed(x)).clamp(-1, 1)
        if self.config.invert_steps:
            q = self.refine(x, q.detach(), self.config.invert_steps)
        return Code(q, self._slices())

    def refine(self, images: Tensor, q: Tensor, steps: int) -> Tensor:
        """``steps`` Adam steps on q minimising the mean ‖G(q) − x‖², q clamped to [−1, 1]."""
        with torch.enable_grad():
            q = q.clone().requires_grad_(True)
            optimiser = torch.optim.Adam([q], lr=self.config.invert_lr)
            target = images_to_signed(images)
            for _ in range(steps):
                loss = (self.generator(q) - target).pow(2).flatten(1).sum(1).mean()
                optimiser.zero_grad()
                loss.backward(inputs=[q])
                optimiser.step()
                with torch.no_grad():
                    q.clamp_(-1, 1)
        return q.detach()

    def decode(self, code: Code) -> Tensor:
        return signed_to_images(self.generator(generator_input(self, code)))

    @torch.no_grad()
    def representation(self, images: Tensor) -> Tensor:
        """§5.1: the concatenated siamese outputs φ(x) on (real) images, one column per knob."""
        return self.embeddings(self.check_images(images))

    def sample_code(self, n: int, generator: torch.Generator | None = None) -> Code:
        """Knobs q ~ U(−1, 1) (§3.1)."""
        q = torch.rand(n, self.config.knobs, generator=generator).to(self.device) * 2 - 1
        return Code(q, self._slices())

    def traversal_range(self, dim: int, codes: Tensor | None = None) -> tuple[float, float]:
        return -1.0, 1.0

    def dimension_label(self, dim: int) -> str:
        if dim < self.n_unguided:
            return f" (knob {dim})"
        g = dim - self.n_unguided
        what = {"crops": [f"{b} band" for b in guide.BANDS], "moments": ["centre x", "centre y", "spread"],
                "avgcolor": ["average colour"], "edges": ["edges"]}[self.config.guidance][g]
        return f" (knob {dim}, guided: {what})"

    def visuals(self, batch):
        x = batch["image"][:8]
        rows = {"input": x, "samples": self.sample(8, torch.Generator().manual_seed(0))}
        if self.inverter is not None:
            rows["reconstruction"] = self.reconstruct(x)
        return rows


@register
class UDGANG(UDGAN):
    """UD-GAN-G: the same model with guided knobs (§4.3): ``moments`` on single-channel shape data
    (Appendix D), the four ``crops`` on faces (Fig. 2)."""

    name = "udgan-g"
    supervision = "guidance"

    @dataclass
    class Config(UDGAN.Config):
        guidance: Literal["none", "crops", "moments", "avgcolor", "edges"] = "crops"

    @classmethod
    def presets(cls, info) -> dict[str, dict[str, Any]]:
        p = super().presets(info)
        kind = "moments" if info.channels == 1 else "crops"
        for preset in p.values():
            preset["model.guidance"] = kind
        return p
