"""mddAE (Song, Koyejo & Zhang, "Learning Controllable Disentangled Representations with
Decorrelation Regularization") and its ablations — one model, switches, no copies.

    {ŷ, z} = Encoder(x),  x̂ = Decoder(ŷ, z)                                        (eq. 3)
    ŷ = sigmoid(a) for binary attributes (eq. 5) | softmax(a) for classes (eq. 4)
    L = 1/N Σ L_rec + β 1/N Σ L_dis + γ L_dec                                      (eq. 1)
    L_rec = L_mse + α · ½(1 − MS-SSIM(x, x̂))                                 (eqs. 2, 6, 7)
    L_dis = BCE averaged over attributes (eq. 9) | cross-entropy over classes (eq. 8)
    L_dec = dCov²(Ŷ, Z) (eq. 14) | XCov(Ŷ, Z) (eq. 15) | 0
            | dCor²(Ŷ, Z) (not in the paper: the scale-invariant form, ``decorrelation=dcor``)

Registry names (methods.md §5.7) and their switches:

=============  ==============  =============  =======
name           decoder input   decorrelation  MS-SSIM
=============  ==============  =============  =======
mddae          soft ŷ          dcov           on¹
mddae-xcov     soft ŷ          xcov           on¹
disae          label y         none           off
disae-xcov     label y         xcov           off
mddae-ae       none (z only)   none           off
=============  ==============  =============  =======
¹ on for RGB faces/CelebA, off for digits ("we don't employ MS-SSIM" on MNIST).

``mddae-ae`` is Table 1's "AE" row: the same network with the decoder on z alone and z as wide
as ŷ+z (the registry name ``ae`` is the generic β-VAE-layout baseline).

Images are [0, 1] at the API and at the decoder's sigmoid; L_mse is the mean squared error on
the paper's [−1, 1] scale (the authors' related code averages over pixels — a sum would make
α, β and γ irrelevant). Editing (§3.5): set ŷ_a to any real value (below 0, above 1) with z and
the other ŷ entries from the encoder; for classes, swap ŷ's target entry with its maximum.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..config import fraction, nonnegative, positive
from ..errors import UsageError
from ..nn.blocks import conv_stack, deconv_stack, linear_block
from ..nn.dependence import dcor2, dcov2, dcov2_unbiased, xcov
from ..nn.similarity import ms_ssim
from .base import Code, Model
from .registry import register

Tensor = torch.Tensor


class Encoder(nn.Module):
    """k4 s2 p1 convs, BN, LeakyReLU(0.2), no bias (§5.3); FC (no bias), LeakyReLU, Dropout; a
    final linear layer to [a, z]."""

    def __init__(self, channels: int, size: int, conv: tuple[int, ...], fc: tuple[int, ...], dropout: float,
                 out_dim: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(*conv_stack(channels, conv, norm="batch", act="lrelu", bias=False))
        side = size // 2 ** len(conv)
        layers: list[nn.Module] = [nn.Flatten()]
        width = conv[-1] * side * side
        for h in fc:
            layers += linear_block(width, h, act="lrelu", bias=False, dropout=dropout)
            width = h
        layers.append(nn.Linear(width, out_dim))
        self.fc = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.conv(x))


class Decoder(nn.Module):
    """FC, BN1d, ReLU up to the first feature map, then k4 s2 p1 transposed convs with BN and ReLU
    (the encoder mirrored); image logits."""

    def __init__(self, in_dim: int, channels: int, size: int, conv: tuple[int, ...], fc: tuple[int, ...]) -> None:
        super().__init__()
        side = size // 2 ** len(conv)
        self.start = (conv[-1], side, side)
        layers: list[nn.Module] = []
        width = in_dim
        for h in tuple(reversed(fc)) + (conv[-1] * side * side,):
            layers += linear_block(width, h, norm="batch", act="relu")
            width = h
        self.fc = nn.Sequential(*layers)
        widths = tuple(reversed(conv))
        self.deconv = nn.Sequential(*deconv_stack(widths, channels, norm="batch", act="relu"))

    def forward(self, h: Tensor) -> Tensor:
        """Logits of the image; sigmoid gives [0, 1]."""
        return self.deconv(self.fc(h).view(-1, *self.start))


@register
class MddAE(Model):
    name = "mddae"
    paper = "Song, Koyejo & Zhang (mddAE, dCov decorrelation), AAAI 2020"
    supervision = "attributes or classes"
    layout = "soft target y_hat (one unit per attribute/class) + latent z"
    operations = frozenset({"encode", "decode", "reconstruct", "edit", "traverse"})

    @dataclass
    class Config:
        decoder_input: Literal["soft", "label", "none"] = "soft"  # mddAE ŷ | disAE y | AE: z only
        # eq. 14 | eq. 15 | not the paper: dCor² (scale-invariant), dCov² unbiased (U-statistic) | none
        decorrelation: Literal["dcov", "xcov", "dcor", "dcov-u", "none"] = "dcov"
        # which encoder outputs eq. 1's γ L_dec pushes: "both" ŷ and z (the paper), or "z" alone, with
        # ŷ detached so only BCE shapes ŷ (not the paper; docs/results.md §10 says why)
        dec_grad: Literal["both", "z"] = "both"
        # standardise z over the batch (BatchNorm1d, no affine; running statistics at test time)
        # before the decoder and L_dec, so z cannot escape eq. 14 by shrinking (not the paper)
        z_norm: bool = False
        ms_ssim: bool = True  # the α term of eq. 7 (paper: CelebA only)
        alpha: nonnegative(float) = 1.0  # MS-SSIM weight, eq. 7 (§4: α = 1)
        beta: nonnegative(float) = 1.0  # discriminative weight, eq. 1 (§4: β = 1)
        gamma: nonnegative(float) = 5.0  # decorrelation weight, eq. 1 (§4: γ = 5)
        z_dim: positive() = 1000  # latent size (CelebA: 1000; MNIST disAE: 2)
        conv: tuple[int, ...] = (64, 128, 256)  # encoder conv widths (§5.3, authors' CelebA code)
        fc: tuple[int, ...] = (4000, 2000)  # encoder FC widths (decoder mirrors)
        dropout: fraction() = 0.5
        lr: positive(float) = 1e-4  # Adam (§4)
        lr_schedule: Literal["constant", "cosine"] = "constant"  # constant (§4) | cosine decay to 0 over train.steps (not the paper)
        beta1: float = 0.5
        beta2: float = 0.999

    def __init__(self, config: "MddAE.Config", info) -> None:
        super().__init__(config, info)
        c = config
        self.classes = info.attribute_kind == "onehot"
        self.n_attr = len(info.attributes)
        self.y_dim = 0 if c.decoder_input == "none" else self.n_attr
        self.z_width = c.z_dim + (self.n_attr if c.decoder_input == "none" else 0)
        self.encoder = Encoder(info.channels, info.size, tuple(c.conv), tuple(c.fc), c.dropout, self.y_dim + self.z_width)
        self.decoder = Decoder(self.y_dim + self.z_width, info.channels, info.size, tuple(c.conv), tuple(c.fc))
        # only when on, so models without it keep their modules and state dicts (old runs load)
        self.z_bn = nn.BatchNorm1d(self.z_width, affine=False) if c.z_norm else None

    # --- configuration ---------------------------------------------------------------------
    @classmethod
    def check_data(cls, info) -> None:
        if not info.attributes:
            raise UsageError(f"{cls.name} needs a dataset with attributes or classes; {info.name} has none "
                             "(try faces, sklearn-digits, digits, celeba or folder)")
        size = info.size
        if size % 4:
            raise UsageError(f"{cls.name}: image size {size} must be divisible by 4")

    @classmethod
    def presets(cls, info) -> dict[str, dict[str, Any]]:
        rgb = info.channels == 3
        small = info.size <= 32
        fast = {
            "model.conv": (32, 64) if small else (32, 32, 64, 64),
            "model.fc": (256,),
            "model.dropout": 0.0,
            "model.z_dim": 16 if small else 32,
            "model.lr": 5e-4 if small else 1e-3,  # measured: faster to a usable editor (docs/results.md)
            "model.ms_ssim": rgb and not small,
            "train.steps": 3000,
            "train.batch_size": 64 if small else 32,
        }
        if small:  # 28/32 px grayscale: the authors' MNIST layout (§5.3)
            paper = {"model.conv": (32, 64), "model.fc": (1000,), "model.dropout": 0.25, "model.z_dim": 2,
                     "model.ms_ssim": False, "train.batch_size": 100, "train.steps": 75000}  # 150 epochs of 50k
        else:
            paper = {"model.conv": (64, 128, 256), "model.fc": (4000, 2000), "model.dropout": 0.5, "model.z_dim": 1000,
                     "model.ms_ssim": rgb, "train.batch_size": 128, "train.steps": 31800}  # 25 epochs of 162,770
        paper.update({"model.lr": 1e-4, "model.alpha": 1.0, "model.beta": 1.0, "model.gamma": 5.0})
        return {"fast": fast, "paper": paper}

    # --- the losses ------------------------------------------------------------------------
    def _split(self, h: Tensor) -> tuple[Tensor | None, Tensor, Tensor | None]:
        """Encoder output → (logits a, z, ŷ)."""
        norm = self.z_bn if self.z_bn is not None else (lambda t: t)
        if self.y_dim == 0:
            return None, norm(h), None
        a, z = h[:, : self.y_dim], norm(h[:, self.y_dim :])
        y_hat = torch.softmax(a, 1) if self.classes else torch.sigmoid(a)  # eq. 4 / eq. 5
        return a, z, y_hat

    def _decoder_input(self, y_hat: Tensor | None, z: Tensor, labels: Tensor | None = None) -> Tensor:
        if self.config.decoder_input == "none":
            return z
        y = labels if self.config.decoder_input == "label" and labels is not None else y_hat
        return torch.cat([y, z], 1)

    def reconstruction_loss(self, x: Tensor, logits: Tensor) -> tuple[Tensor, Tensor]:
        x_hat = torch.sigmoid(logits)
        l_mse = ((2 * x_hat - 2 * x) ** 2).mean()  # eq. 2 on the paper's [−1, 1] scale
        if not self.config.ms_ssim:
            return l_mse, l_mse.new_zeros(())
        with torch.autocast(device_type=x.device.type, enabled=False):
            l_dssim = 0.5 * (1.0 - ms_ssim(x_hat.float(), x.float()).mean())  # eq. 6
        return l_mse, l_dssim

    def discriminative_loss(self, a: Tensor, y: Tensor) -> Tensor:
        if self.classes:
            return F.cross_entropy(a, y.argmax(1))  # eq. 8
        return F.binary_cross_entropy_with_logits(a, y)  # eq. 9 (mean over the C attributes)

    def decorrelation_loss(self, y_hat: Tensor, z: Tensor) -> Tensor:
        kind = self.config.decorrelation
        if kind == "none" or y_hat is None:
            return z.new_zeros(())
        with torch.autocast(device_type=z.device.type, enabled=False):
            measure = {"dcov": dcov2, "xcov": xcov, "dcor": dcor2, "dcov-u": dcov2_unbiased}[kind]
            y = y_hat.detach() if self.config.dec_grad == "z" else y_hat
            return measure(y.float(), z.float())

    def train_step(self, batch, step, opt):
        c = self.config
        x, y = batch["image"], batch["attributes"]
        a, z, y_hat = self._split(self.encoder(x))
        logits = self.decoder(self._decoder_input(y_hat, z, y))
        l_mse, l_dssim = self.reconstruction_loss(x, logits)
        l_rec = l_mse + c.alpha * l_dssim  # eq. 7
        l_dis = self.discriminative_loss(a, y) if a is not None else l_mse.new_zeros(())
        l_dec = self.decorrelation_loss(y_hat, z)
        loss = l_rec + c.beta * l_dis + c.gamma * l_dec  # eq. 1
        opt.step("autoencoder", loss)
        return {"loss": loss, "mse": l_mse, "dssim": l_dssim, "dis": l_dis, "dec": l_dec, "z_std": z.detach().std()}

    def configure_optimizers(self):
        c = self.config
        return {"autoencoder": torch.optim.Adam(self.parameters(), lr=c.lr, betas=(c.beta1, c.beta2))}

    def configure_schedulers(self, optimizers, steps):
        if self.config.lr_schedule == "constant":
            return {}
        cosine = lambda t: 0.5 * (1 + math.cos(math.pi * min(t, steps) / steps))  # noqa: E731
        return {k: torch.optim.lr_scheduler.LambdaLR(o, cosine) for k, o in optimizers.items()}

    # --- user-facing operations ------------------------------------------------------------
    def encode(self, images: Tensor) -> Code:
        x = self.check_images(images)
        _, z, y_hat = self._split(self.encoder(x))
        if y_hat is None:
            return Code(z, {"z": slice(0, z.shape[1])})
        slices = {"y": slice(0, self.y_dim), "z": slice(self.y_dim, self.y_dim + z.shape[1])}
        slices.update({name: slice(i, i + 1) for i, name in enumerate(self.info.attributes)})
        return Code(torch.cat([y_hat, z], 1), slices)

    def _y_for_decoder(self, y_hat: Tensor) -> Tensor:
        """What the decoder sees at test time: ŷ (soft models) or the predicted label (disAE)."""
        if self.config.decoder_input != "label":
            return y_hat
        if self.classes:
            return F.one_hot(y_hat.argmax(1), self.y_dim).to(y_hat.dtype)
        return (y_hat > 0.5).to(y_hat.dtype)

    def decode(self, code: Code) -> Tensor:
        return torch.sigmoid(self.decoder(code.tensor))  # the code is [ŷ, z] (or z alone), the decoder's input

    @torch.no_grad()
    def reconstruct(self, images: Tensor) -> Tensor:
        code = self.encode(images)
        if self.y_dim:
            code = code.with_part("y", self._y_for_decoder(code["y"]))
        return self.decode(code)

    @torch.no_grad()
    def edit(self, images: Tensor, attribute: str, value=1.0, **kwargs: Any) -> Tensor:
        """Set ŷ_attribute to ``value`` (a float — any real, e.g. 1.7 — or one per image) and
        decode with z and the other ŷ entries from the encoder (§3.5, case 2). For class
        datasets (case 1) the target class's ŷ entry is swapped with ŷ's maximum."""
        self.require("edit")
        if self.y_dim == 0:
            raise UsageError(f"{self.name} with decoder_input=none has no attribute units to edit")
        k = self.info.attribute_index(attribute)
        code = self.encode(images)
        y = self._y_for_decoder(code["y"]).clone()
        values = torch.as_tensor(value, dtype=y.dtype, device=y.device)
        if values.dim() > 1 or (values.dim() == 1 and len(values) != len(y)):
            raise UsageError(f"edit value must be a number or one number per image ({len(y)}), got shape {tuple(values.shape)}")
        if self.classes:
            if not bool(torch.all(values == 1)):
                raise UsageError("class edits swap ŷ entries (mddAE case 1): use value=1 to make the image this class")
            top = y.argmax(1)
            rows = torch.arange(len(y), device=y.device)
            y_top, y_k = y[rows, top].clone(), y[rows, k].clone()
            y[rows, top], y[rows, k] = y_k, y_top
        else:
            y[:, k] = values
        return self.decode(code.with_part("y", y))

    @torch.no_grad()
    def edit_many(self, images: Tensor, values: dict[str, float]) -> Tensor:
        """Several ŷ units set at once, one decode (binary attributes; class edits go one by one)."""
        self.require("edit")
        if self.classes or self.y_dim == 0:
            return super().edit_many(images, values)
        code = self.encode(images)
        y = self._y_for_decoder(code["y"]).clone()
        for attribute, value in values.items():
            y[:, self.info.attribute_index(attribute)] = float(value)
        return self.decode(code.with_part("y", y))

    def edit_range(self, attribute: str) -> tuple[float, float]:
        return (0.0, 1.0) if self.classes else (-0.5, 2.0)  # ŷ takes any real value (§3.5); this is the useful span

    @torch.no_grad()
    def attribute_values(self, images: Tensor) -> dict[str, Tensor]:
        if self.y_dim == 0:
            return {}
        y = self._y_for_decoder(self.encode(images)["y"])  # what the decoder sees (0/1 for disAE's label input)
        return {a: y[:, k] for k, a in enumerate(self.info.attributes)}

    def traversal_code(self, images: Tensor) -> Code:
        """Code dimensions: ŷ units first (as the decoder sees them), then z."""
        code = self.encode(images)
        if self.y_dim:
            code = code.with_part("y", self._y_for_decoder(code["y"]))
        return code

    def traversal_range(self, dim: int, codes: Tensor | None = None) -> tuple[float, float]:
        if dim < self.y_dim:
            return (-0.5, 2.0) if not self.classes else (0.0, 1.0)  # ŷ units: any real value (§3.5)
        return super().traversal_range(dim, codes)

    def dimension_label(self, dim: int) -> str:
        if dim < self.y_dim:
            return f" (ŷ {self.info.attributes[dim]})"
        return f" (z {dim - self.y_dim})"

    def visuals(self, batch):
        x = batch["image"][:8]
        rows = {"input": x, "reconstruction": self.reconstruct(x)}
        if self.y_dim and not self.classes:
            rows[f"{self.info.attributes[0]}=1"] = self.edit(x, self.info.attributes[0], 1.0)
            rows[f"{self.info.attributes[0]}=0"] = self.edit(x, self.info.attributes[0], 0.0)
        return rows


def _variant(name: str, paper_note: str, switches: dict[str, Any], ms_ssim_default: bool) -> type[MddAE]:
    """A registry name for a switch setting of the one MddAE model (not a copy of it)."""

    @dataclass
    class Config(MddAE.Config):
        decoder_input: Literal["soft", "label", "none"] = switches["decoder_input"]
        decorrelation: Literal["dcov", "xcov", "dcor", "dcov-u", "none"] = switches["decorrelation"]
        ms_ssim: bool = ms_ssim_default

    def presets(klass, info):
        p = MddAE.presets.__func__(klass, info)
        for preset in p.values():
            if not ms_ssim_default:
                preset["model.ms_ssim"] = False
            if switches["decoder_input"] == "none":
                preset["model.beta"] = 0.0
        return p

    attrs = {"name": name, "paper": paper_note, "Config": Config, "presets": classmethod(presets),
             "layout": "z only (Table 1 'AE')" if switches["decoder_input"] == "none" else MddAE.layout}
    if switches["decoder_input"] == "none":
        attrs["operations"] = frozenset({"encode", "decode", "reconstruct", "traverse"})
        attrs["supervision"] = "none"
    return register(type(f"MddAE_{name.replace('-', '_')}", (MddAE,), attrs))


MddAEXCov = _variant("mddae-xcov", "mddAE with XCov instead of dCov (Song et al. Table 1 'mddAE-XCov')",
                     {"decoder_input": "soft", "decorrelation": "xcov"}, True)
DisAE = _variant("disae", "plain disAE: decoder fed the label, no regularisation (Song et al. Table 1)",
                 {"decoder_input": "label", "decorrelation": "none"}, False)
DisAEXCov = _variant("disae-xcov", "Cheung et al. 2015 XCov autoencoder (Song et al. Table 1 'disAE-XCov')",
                     {"decoder_input": "label", "decorrelation": "xcov"}, False)
MddAEAE = _variant("mddae-ae", "plain AE with the mddAE network (Song et al. Table 1 'AE')",
                   {"decoder_input": "none", "decorrelation": "none"}, False)
