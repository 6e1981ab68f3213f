"""DNA-GAN (Xiao, Hong & Ma, "DNA-GAN: Learning Disentangled Representations from Multi-Attribute
Images", ICLR-W 2018; methods.md §1): a spatial latent split into one piece per labelled attribute
plus an attribute-free part z; pieces are annihilated and swapped between a pair of faces that
differ in one attribute, and a conditional critic judges the crossbreeds.

Representation (§1.1). ``Enc(x) = [a_1, …, a_n, z]``: the encoder's 4f × s/8 × s/8 map split along
channels, ``piece_channels`` per attribute, z the rest (the code: 512 × 8 × 8, 128 per piece).

Data flow for attribute i (§1.3, eq. 1–2), A with i = 1 (dominant), B with i = 0 (recessive)::

    A1 = Dec([a_1 … a_i … a_n, z_a])    reconstruction of A
    B1 = Dec([b_1 … 0   … b_n, z_b])    reconstruction of B, piece i annihilated
    A2 = Dec([a_1 … 0   … a_n, z_a])    A loses attribute i
    B2 = Dec([b_1 … a_i … b_n, z_b])    B gains attribute i

``annihilate=false`` is the ablation of §3.3 (eq. 9): B1 = Dec(Enc(B)), A2 takes b_i instead of 0.

Losses (each next to its equation, summed over the attribute pairs of a step, as the code):

    L_rec = ‖A − A1‖₁ + ‖B − B1‖₁ (eq. 3), as the code: mean |·| in [0, 1] units (its |·|/255)
    ``gan=wgan`` (the code, Arjovsky et al.):  critic  E[f(B2|·)ᵢ] − E[f(A|y_A)ᵢ] + E[f(A2|·)ᵢ] − E[f(B|y_B)ᵢ]
                                               generator  −E[f(B2|·)ᵢ] − E[f(A2|·)ᵢ]
    ``gan=nonsaturating`` (the paper, eqs. 4, 6–8):  L_D = L_D1 + L_D0,
        L_D1 = −log D(A|y_A)ᵢ − log(1 − D(B2|·)ᵢ),  L_D0 = −log D(B|y_B)ᵢ − log(1 − D(A2|·)ᵢ)
        L_GAN = −log D(B2|·)ᵢ − log D(A2|·)ᵢ   (eq. 4 with its typo fixed: eqs. 6–7 and the code
        judge B2 as an A and A2 as a B)
    L_G = L_rec + λ_gan L_GAN (eq. 5, "omitting the coefficient": λ_gan = 1)

The critic is shared over attributes: it reads the image with the label vector (±1) tiled on
planes and returns one score per attribute; attribute i's pair uses score i (§1.2). What the
crossbreeds are conditioned on is ``critic_labels``: ``donor`` (the code) — B2 on A's whole label
vector and A2 on B's; ``recipient`` — each child on its own image's labels with element i set to
the value it should now have (ours; with ``donor`` every other attribute of the donor is asked
of the child too).

Schedule (§1.5): RMSprop (lr 5e-5, smoothing 0.8, no momentum) for both players; the critic runs
``critic_burst`` = 100 steps on the same batch every ``critic_burst_every`` = 500th step and
``critic_steps`` = 1 otherwise, each followed (``gan=wgan``) by clipping every critic parameter —
BatchNorm's γ and β included — to [−``clip``, ``clip``]; then one generator step. The generator's
forward pass is computed once per step: the critic steps read its detached children, the
generator step scores them with the updated critic. Pair batches: ``schedule`` (see
:mod:`factorkit.data.pairs`); ``train.batch_size`` is the size of one A (or B) batch.

Editing (§1.6, the code's ``test.py``): ``swap`` exchanges pieces; ``crossbreed`` gives the four
children of a test pair (the code's ``swap_attribute``); ``edit(value=0)`` annihilates;
``edit(value=λ)`` sets piece i to λ times a reference image's piece — by default the attribute's
*prototype*, the running mean of a_i over the training A's (ours: the paper always edits with a
second image; the prototype lets every edit metric run on one image; under ``annihilate=false``
"off" is the mean b_i of the training B's, since that model never decoded a zero piece);
``interpolate`` blends λ·a_i + (1 − λ)·b_i for one or two attributes (Fig. 4).
``edit_output=residual`` (ours; not in the paper or the code): ``swap``, ``crossbreed``, ``edit`` and
``edit_many`` return the input plus the decoder's change, x + (D(h') − D(h)), so details the
autoencoder blurs are kept (docs/results.md §10, §12); ``decoded`` (the paper) returns D(h').
``children=residual`` (ours, after the same authors' follow-up ELEGANT, Xiao, Hong & Ma, ECCV 2018,
whose generator outputs a residual image added to its input): the critic judges each child as its
parent plus the change its new latent makes, A2 = A + (Dec(h_A2) − A1) and B2 = B + (Dec(h_B2) − B1)
(``residual_children``), so training sees what ``edit_output=residual`` returns; the reconstruction
term (eq. 3) is unchanged. With ``decoded`` (the paper) the children are the decodes themselves,
which the critic alone trains (results §12: noisy children, identity lost). Edits of such a model
should be read with ``edit_output=residual``; ``crossbreed`` then subtracts what training does (A1
and B1, piece i as eq. 3 reconstructs it), ``edit`` and ``swap`` the input's plain decode D(h). ``critic_condition=projection``
(ours): see :class:`Critic`.
``lambda_cls`` > 0 (ours, after AttGAN, He et al., TIP 2019, eqs. 9–11, a successor of DNA-GAN and
ELEGANT): an attribute classifier C (:class:`AttributeClassifier`, its own player) learns every
attribute from the real A's and B's; the generator adds λ_cls·[bce(C(B2), y_B with i = 1) + bce(C(A2),
y_A with i = 0)], the recipient's labels with attribute i flipped, so each child has to *show* its
new attribute and keep the others. The critic only tells real from changed; results §12 found that
a stronger critic removes edits instead of sharpening them. Off (0) in both presets.
``lambda_residual`` > 0 (ours, after Shen & Liu, "Learning residual images for face attribute
manipulation", CVPR 2017, whose generator's residual image pays an L1 norm): the generator adds
λ_res·[‖B2 − B‖₁ + ‖A2 − A‖₁] in eq. 3's units (:meth:`residual_loss`), so a child changes only
where the critic and the classifier ask it to. Measured before it (results §12): the residual
children changed 2–10× more of the face (mean |Δ|) than the true counterfactual does. Off in both
presets. ``cls_noise`` = σ > 0 (ours, the Gaussian-noise training of randomised smoothing, Cohen et
al., ICML 2019): C sees every image, real or child, plus N(0, σ²), so a child cannot satisfy it with
fine noise that a clean classifier misreads (results §12 measured C fooled where the judge was not).
``children=masked`` (ours, after the attention masks of GANimation, Pumarola et al., ECCV 2018, eq. 1–2,
and SaGAN, Zhang et al., ECCV 2018): the decoder draws one more plane, a mask m in [0, 1], and each
child is its residual child gated by the mask drawn from its own latent, A2 = A + m_A2 ⊙ (Dec(h_A2) − A1)
(:meth:`masked_children`); ``lambda_mask`` prices the mask's area (:meth:`mask_loss`), so the edit
decides *where* it draws and leaves every other pixel exactly the parent's (results §12 found the
children lose the eye shape and nose next to the edit). ``edit_output=masked`` edits the same way,
x + m ⊙ (D(h') − D(h)). Off in both presets. Without ``children=masked`` (no mask drawn),
``edit_output=masked`` weighs the same change by its own blurred magnitude (``base.change_mask``, as
IFcVAE-GAN's; results §11–12): an edit-time switch on any trained run.
``skips`` = k > 0 (ours, after AttGAN's shortcut layers, He et al., TIP 2019, §3.3, and STGAN's
selective transfer, Liu et al., CVPR 2019): the decoder also reads the encoder's k coarsest inner maps
(1: s/4, 2: also s/2) *of the image being edited*, so it can draw an edit in register with that face's
detail. Every child decodes with its parent's maps (B2 with B's, A2 with A's), so a swap carries only
the pieces, never the donor's maps; a swap of every piece and z is then a's latent drawn over b's maps,
not a's reconstruction. ``decode(code)`` is unsupported (a bare code has no maps); every other
operation is unchanged. Off (0) in both presets.
``gan=wgan-gp`` (ours, after Gulrajani et al., NeurIPS 2017, the critic AttGAN and STGAN train with):
the WGAN losses above, with the gradient penalty (:meth:`gradient_penalty`, ``gp_weight`` = λ = 10)
in place of weight clipping and a critic without BatchNorm. Results §12 found the clipped critic
blind to what the classifier term draws (coloured speckle for bangs); a penalised critic is not
limited to the near-linear functions clipping leaves it. Its scores are unbounded, so
``lambda_gan`` has to be set with it (results §12). Off in both presets.

Deviations from the code, for speed or because it is silent: the encoder runs once over every A
and B of a step and the decoder once over all 4n children, so their BatchNorm statistics pool what
the code normalises per attribute and per source (the critic still sees each source — A, B, B2, A2
— as its own batch, pooled over attributes under ``joint``); PyTorch's RMSprop starts its mean
square at 0 where TF1's starts at 1 (with ε inside the root), so the first updates are larger.

Init (the code): every weight N(0, 0.02), no conv bias but one learned per-channel bias before
the decoder's tanh; FC bias zero. Images are [0, 1] outside and [−1, 1] inside (the code's
x/127.5 − 1).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..config import fraction, nonnegative, positive
from ..data.pairs import AttributePairSampler
from ..errors import UsageError
from ..nn import adversarial as adv
from ..nn.blocks import conv_block, conv_stack
from .base import (
    Code,
    Model,
    change_mask,
    images_to_signed,
    require_binary_attributes,
    residual_output,
    resolve_attributes,
    signed_to_images,
)
from .registry import register

Tensor = torch.Tensor


# --- networks (methods.md §1.2; f = width, the code's 128) ---------------------------------------


def _init(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class Encoder(nn.Module):
    """The code's "splitter": conv k4 s2 to f (no BN), 2f, 4f (BN), LReLU 0.2, no bias."""

    def __init__(self, channels: int, f: int) -> None:
        super().__init__()
        self.net = nn.Sequential(*conv_block(channels, f, 4, 2, 1, act="lrelu", bias=False),
                                 *conv_block(f, 2 * f, 4, 2, 1, norm="batch", act="lrelu", bias=False),
                                 *conv_block(2 * f, 4 * f, 4, 2, 1, norm="batch", act="lrelu", bias=False))
        _init(self)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)

    def features(self, x: Tensor) -> tuple[Tensor, list[Tensor]]:
        """(the latent, [the s/2 map (f channels), the s/4 map (2f)]): the output of every block but the
        last, finest first — what ``skips`` passes to the decoder."""
        maps = []
        for layer in self.net:
            x = layer(x)
            if isinstance(layer, nn.LeakyReLU):
                maps.append(x)
        return x, maps[:-1]


class Decoder(nn.Module):
    """The code's "joiner": deconv k4 s2 to 4f, 2f (BN, ReLU), to the image, a learned bias, tanh.

    ``mask=True`` (``children=masked``, ours): the last deconvolution draws one more plane, the
    mask logit; :meth:`split` returns (image, m = sigmoid(logit + learned bias)), ``forward`` the
    image alone, so every other use of the decoder is unchanged.

    ``skips`` = k > 0 (``model.skips``, ours): the encoder's k coarsest inner maps of the image being
    edited (:meth:`Encoder.features`; 1: the s/4 map, 2: also the s/2 map) are concatenated to the
    decoder's maps of the same size, as AttGAN's shortcut layers (He et al., TIP 2019, §3.3)."""

    def __init__(self, channels: int, f: int, mask: bool = False, skips: int = 0) -> None:
        super().__init__()
        self.channels, self.skips = channels, skips
        extra = [0, 2 * f if skips >= 1 else 0, f if skips >= 2 else 0]  # channels joined before each deconv
        self.net = nn.Sequential(*conv_block(4 * f + extra[0], 4 * f, 4, 2, 1, norm="batch", act="relu", bias=False, transpose=True),
                                 *conv_block(4 * f + extra[1], 2 * f, 4, 2, 1, norm="batch", act="relu", bias=False, transpose=True),
                                 *conv_block(2 * f + extra[2], channels + int(mask), 4, 2, 1, bias=False, transpose=True))
        self.bias = nn.Parameter(torch.zeros(1, channels, 1, 1))
        if mask:
            self.mask_bias = nn.Parameter(torch.zeros(1, 1, 1, 1))
        _init(self)

    def split(self, h: Tensor, maps: list[Tensor] | None = None) -> tuple[Tensor, Tensor | None]:
        """(image, mask or None) from the latent ``h`` and, with ``skips``, the encoder's ``maps`` of
        the image being edited (finest first, :meth:`Encoder.features`)."""
        if self.skips and maps is None:
            raise ValueError("this decoder has skip connections: pass the encoder's maps of the edited image")
        if not self.skips:
            out = self.net(h)
        else:
            joins = list(reversed(maps[-self.skips:]))  # coarsest first: before the 2nd deconvolution, then the 3rd
            out, deconvs = h, 0
            for layer in self.net:
                if isinstance(layer, nn.ConvTranspose2d):
                    if deconvs and joins:
                        out = torch.cat([out, joins.pop(0)], 1)
                    deconvs += 1
                out = layer(out)
        image = torch.tanh(out[:, :self.channels] + self.bias)
        mask = torch.sigmoid(out[:, self.channels:] + self.mask_bias) if hasattr(self, "mask_bias") else None
        return image, mask

    def forward(self, h: Tensor, maps: list[Tensor] | None = None) -> Tensor:
        return self.split(h, maps)[0]


class Critic(nn.Module):
    """D, shared over attributes: [image, labels tiled on n planes] → conv k4 s2 to f (no BN), 2f,
    4f, 4f (BN), LReLU, then FC → one score per attribute (no sigmoid).

    ``condition=projection`` (ours, after Miyato & Koyama's projection discriminator, ICLR 2018):
    no label planes; the features φ(x) give s = W φ(x) + (V φ(x))·y, where V φ(x) is an n × n
    matrix and y the ±1 label vector, so score j reads the attributes from the image and compares
    them with the labels directly instead of through the first convolution.

    ``norm=None`` (``gan=wgan-gp``): no BatchNorm, since the gradient penalty is per image and batch
    statistics would tie each image's gradient to the rest of its batch (Gulrajani et al. §4)."""

    def __init__(self, channels: int, size: int, f: int, n_attr: int, condition: str = "planes",
                 norm: str | None = "batch") -> None:
        super().__init__()
        self.condition, self.n_attr = condition, n_attr
        planes = n_attr if condition == "planes" else 0
        self.net = nn.Sequential(*conv_block(channels + planes, f, 4, 2, 1, act="lrelu", bias=False),
                                 *conv_block(f, 2 * f, 4, 2, 1, norm=norm, act="lrelu", bias=False),
                                 *conv_block(2 * f, 4 * f, 4, 2, 1, norm=norm, act="lrelu", bias=False),
                                 *conv_block(4 * f, 4 * f, 4, 2, 1, norm=norm, act="lrelu", bias=False),
                                 nn.Flatten(), nn.Linear(4 * f * (size // 16) ** 2, n_attr))
        if condition == "projection":
            self.projection = nn.Linear(4 * f * (size // 16) ** 2, n_attr * n_attr, bias=False)
        _init(self)

    def forward(self, x: Tensor, labels: Tensor) -> Tensor:
        signs = (labels * 2 - 1).to(x.dtype)  # the code's raw ±1 labels
        if self.condition == "planes":
            return self.net(torch.cat([x, signs[:, :, None, None].expand(-1, -1, *x.shape[2:])], 1))
        phi = self.net[:-1](x)
        v = self.projection(phi).view(len(x), self.n_attr, self.n_attr)
        return self.net[-1](phi) + (v @ signs[:, :, None]).squeeze(2)


class AttributeClassifier(nn.Module):
    """``lambda_cls`` > 0: the critic's conv stack without label planes or BatchNorm (C scores real
    images in its own step and children in the generator's, so batch statistics would differ) →
    one logit per attribute."""

    def __init__(self, channels: int, size: int, f: int, n_attr: int) -> None:
        super().__init__()
        self.net = nn.Sequential(*conv_stack(channels, [f, 2 * f, 4 * f, 4 * f], norm=None),
                                 nn.Flatten(), nn.Linear(4 * f * (size // 16) ** 2, n_attr))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


@dataclass
class Pair:
    """One attribute's pair batch: attribute position ``j``, images in [−1, 1] and 0/1 labels."""

    j: int
    xa: Tensor
    ya: Tensor
    xb: Tensor
    yb: Tensor


@register
class DNAGAN(Model):
    name = "dna-gan"
    paper = "Xiao, Hong & Ma, DNA-GAN: Learning Disentangled Representations from Multi-Attribute Images, 2018"
    supervision = "attributes"
    layout = "one spatial piece per attribute + attribute-free z (channels of the encoder map)"
    operations = frozenset({"encode", "decode", "reconstruct", "edit", "swap"})

    @dataclass
    class Config:
        attributes: tuple[str, ...] = ()  # the labelled attributes with a piece each (empty: all of the dataset's)
        width: positive() = 128  # f: encoder f, 2f, 4f; the latent has 4f channels (the code: 512)
        piece_channels: positive() = 128  # channels per attribute piece (the code: 0.25 × 512); z gets the rest
        gan: Literal["wgan", "nonsaturating", "wgan-gp"] = "wgan"  # the code (clipping) | the paper (eqs. 4–8) | ours (module doc)
        clip: positive(float) = 0.01  # WGAN weight clipping c
        gp_weight: positive(float) = 10.0  # gan=wgan-gp: λ of Gulrajani et al. eq. 3
        lambda_gan: nonnegative(float) = 1.0  # eq. 5 "omitting the coefficient"
        lr: positive(float) = 5e-5  # RMSprop, both players
        rmsprop_alpha: fraction() = 0.8  # the code's decay=0.8
        critic_steps: positive() = 1
        critic_burst: positive() = 100  # critic steps every critic_burst_every-th step (the code: 100 / 500)
        critic_burst_every: nonnegative() = 500  # 0: no bursts
        schedule: Literal["joint", "cyclic", "random_pairs"] = "joint"  # the code | §3.4 | §3.4's comparison
        annihilate: bool = True  # False: swap b_i instead of zeroing it (§3.3's ablation)
        critic_labels: Literal["donor", "recipient"] = "donor"  # the code | ours (see the module doc)
        prototype_momentum: fraction() = 0.99  # running mean of each piece over the training A's
        edit_output: Literal["decoded", "residual", "masked"] = "decoded"  # base.EDIT_OUTPUT_DOC | masked (module doc)
        children: Literal["decoded", "residual", "masked"] = "decoded"  # the paper | ELEGANT's residual children | + a mask (module doc)
        critic_condition: Literal["planes", "projection"] = "planes"  # the paper's label planes | ours (Critic)
        lambda_cls: nonnegative(float) = 0.0  # ours (AttGAN's attribute classifier on the children; module doc)
        lambda_residual: nonnegative(float) = 0.0  # ours (Shen & Liu's L1 on each child's change; module doc)
        cls_noise: nonnegative(float) = 0.0  # ours: σ of the Gaussian noise on every image C sees (classify)
        lambda_mask: nonnegative(float) = 0.0  # ours (GANimation's L1 on the attention mask; children=masked)
        skips: nonnegative() = 0  # ours: 0–2 encoder maps of the edited image joined into the decoder (AttGAN; Decoder)

    def __init__(self, config: "DNAGAN.Config", info) -> None:
        super().__init__(config, info)
        c = config
        self.attr_names = resolve_attributes(info, c.attributes)
        self.attr_index = [info.attribute_index(a) for a in self.attr_names]
        n, latent = len(self.attr_names), 4 * c.width
        if n * c.piece_channels >= latent:
            raise UsageError(
                f"{self.name}: {n} attribute pieces × {c.piece_channels} channels = {n * c.piece_channels} leave no "
                f"channels for z out of the latent's 4 × width = {latent}; set model.piece_channels to at most "
                f"{(latent - 1) // n}, raise model.width or train fewer model.attributes")
        if "z" in self.attr_names:
            raise UsageError(f"{self.name}: an attribute named 'z' would clash with the attribute-free part")
        self.latent_shape = (latent, info.size // 8, info.size // 8)
        self.encoder = Encoder(info.channels, c.width)
        masked = c.children == "masked"
        if c.lambda_mask and not masked:
            raise UsageError(f"{self.name}: model.lambda_mask={c.lambda_mask} is the L1 on the children's mask, and "
                             f"model.children={c.children} has none; set model.children=masked or drop lambda_mask")
        if c.skips > 2:
            raise UsageError(f"{self.name}: model.skips={c.skips}, but the encoder has 2 inner maps to join into the "
                             "decoder (1: the s/4 map, 2: also the s/2 map); set model.skips to 0, 1 or 2")
        self.decoder = Decoder(info.channels, c.width, mask=masked, skips=c.skips)
        if c.skips:  # a bare code lacks the edited image's maps: decode(code) has nothing to join
            self.operations = type(self).operations - {"decode"}
        self.critic = Critic(info.channels, info.size, c.width, n, c.critic_condition,
                             norm=None if c.gan == "wgan-gp" else "batch")
        if c.cls_noise and not c.lambda_cls:
            raise UsageError(f"{self.name}: model.cls_noise={c.cls_noise} is the noise on the attribute classifier's "
                             "inputs, and there is no classifier (model.lambda_cls=0); set model.lambda_cls > 0 or drop cls_noise")
        if c.lambda_cls:
            self.classifier = AttributeClassifier(info.channels, info.size, c.width, n)
        # running means of each piece over the training A's (attribute on) and B's (off): edit references
        self.register_buffer("prototypes", torch.zeros(n, c.piece_channels, *self.latent_shape[1:]))
        self.register_buffer("off_prototypes", torch.zeros(n, c.piece_channels, *self.latent_shape[1:]))
        self.register_buffer("prototype_count", torch.zeros(n))

    # --- configuration ---------------------------------------------------------------------
    @classmethod
    def check_data(cls, info) -> None:
        require_binary_attributes(cls.name, info, "try faces, celeba or a folder with attributes")
        if info.size % 16:
            raise UsageError(f"{cls.name}: image size {info.size} must be divisible by 16 (the critic's four stride-2 layers)")

    @classmethod
    def presets(cls, info) -> dict[str, dict[str, Any]]:
        two = tuple(a for a in ("Bangs", "Eyeglasses") if a in info.attributes) or tuple(info.attributes[:2])
        # paper: the code's defaults (64×64, 512-channel latent, 128 per piece, batch 64 per stream,
        # 200,000 steps) on the README's example attributes
        paper = {"model.attributes": two, "model.width": 128, "model.piece_channels": 128,
                 "train.batch_size": 64, "train.steps": 200_000}
        # fast (docs/results.md §12): four attributes of Fig. 5, a quarter of the code's width (latent
        # 128 channels, 16 per piece, z 64), one attribute pair per step (the paper's iterative training:
        # a quarter of joint's images per step) and lr 2e-4 (at 5e-5, 1,200 steps reach 22.3 dB, at 2e-4 25.1 dB)
        four = tuple(a for a in ("Bangs", "Eyeglasses", "Smiling", "Wearing_Hat") if a in info.attributes)
        fast = {"model.attributes": four or tuple(info.attributes[:3]), "model.width": 32, "model.piece_channels": 16,
                "model.schedule": "cyclic", "model.lr": 2e-4, "train.batch_size": 16, "train.steps": 6000}
        return {"fast": fast, "paper": paper}

    def edit_attributes(self) -> list[str]:
        return list(self.attr_names)

    def chunk_names(self) -> list[str]:
        """The pieces ``swap`` takes by name: one per attribute, then ``z``."""
        return [*self.attr_names, "z"]

    # --- pieces of the spatial latent ----------------------------------------------------------
    def piece(self, j: int) -> slice:
        """Channels of piece ``j`` (0..n−1) or, for j = n, of z."""
        pc, n = self.config.piece_channels, len(self.attr_names)
        return slice(j * pc, (j + 1) * pc) if j < n else slice(n * pc, self.latent_shape[0])

    def with_piece(self, h: Tensor, j: int, value: Tensor | float) -> Tensor:
        out = h.clone()
        out[:, self.piece(j)] = value
        return out

    def piece_index(self, name) -> int:
        """An attribute name, ``z``, or a piece number (n = z) → the piece's position."""
        n = len(self.attr_names)
        if isinstance(name, int) or str(name).isdigit():
            j = int(name)
            if not 0 <= j <= n:
                raise UsageError(f"{self.name}: piece {j} out of range; pieces 0..{n - 1} are "
                                 f"{', '.join(self.attr_names)} and {n} is z")
            return j
        if name == "z":
            return n
        name = self.info.attributes[self.info.attribute_index(name)]  # any case; an unknown name: the dataset's error
        if name not in self.attr_names:
            raise UsageError(f"{self.name} has pieces for {', '.join(self.attr_names)} (and z), not {name!r} "
                             "(model.attributes)")
        return self.attr_names.index(name)

    # --- pair batches ------------------------------------------------------------------------
    def batch_sampler(self, dataset, batch_size, seed, rank, world, start):
        if world > 1 and self.config.schedule == "random_pairs":
            raise UsageError("schedule=random_pairs trains on one process: a process that draws no useful pair skips "
                             "its step, which would leave the others waiting in the gradient all-reduce; use "
                             "schedule=cyclic or joint with several processes")
        labels = dataset.attribute_array()
        return AttributePairSampler(labels, self.attr_index, batch_size, seed, self.config.schedule, rank, world, start,
                                    names=self.attr_names)

    def critic_iterations(self, step: int) -> int:
        """§1.5: ``critic_burst`` (100) at steps 0, 500, 1000, …, else ``critic_steps`` (1). Under
        ``cyclic`` and ``random_pairs`` (one attribute per step, i = step mod n) the k-th burst moves
        to the first step ≥ 500k that trains attribute k mod n, so the bursts go round the attributes
        instead of landing on whichever attribute 500k mod n picks — always attribute 0 when n divides
        500 (ours; the code trains every attribute in every step)."""
        c = self.config
        if not c.critic_burst_every:
            return c.critic_steps
        k, offset = divmod(step, c.critic_burst_every)
        if c.schedule != "joint":
            n = len(self.attr_names)
            return c.critic_burst if offset == (k - k * c.critic_burst_every) % n else c.critic_steps
        return c.critic_burst if offset == 0 else c.critic_steps

    def pairs(self, batch: dict[str, Tensor], step: int) -> list[Pair]:
        """Cut a sampler batch into its attribute pairs (see :mod:`factorkit.data.pairs`): A_i, B_i
        blocks for every attribute (``joint``), for i = step mod n (``cyclic``), or — ``random_pairs`` —
        the useful pairs of two random blocks (labels differ at i), turned so that A has i = 1."""
        x, y = images_to_signed(batch["image"]), batch["attributes"][:, self.attr_index].float()
        n = len(self.attr_names)
        if self.config.schedule == "joint":
            b = len(x) // (2 * n)
            out = [Pair(j, x[2 * j * b:(2 * j + 1) * b], y[2 * j * b:(2 * j + 1) * b],
                        x[(2 * j + 1) * b:(2 * j + 2) * b], y[(2 * j + 1) * b:(2 * j + 2) * b]) for j in range(n)]
        else:
            b, j = len(x) // 2, step % n
            xa, ya, xb, yb = x[:b], y[:b], x[b:2 * b], y[b:2 * b]
            if self.config.schedule == "random_pairs":
                turn = ya[:, j] < 0.5
                xa, xb = torch.where(turn[:, None, None, None], xb, xa), torch.where(turn[:, None, None, None], xa, xb)
                ya, yb = torch.where(turn[:, None], yb, ya), torch.where(turn[:, None], ya, yb)
                useful = ya[:, j] != yb[:, j]
                xa, ya, xb, yb = xa[useful], ya[useful], xb[useful], yb[useful]
            out = [Pair(j, xa, ya, xb, yb)]
        for p in out:
            if len(p.ya) and not (bool((p.ya[:, p.j] > 0.5).all()) and bool((p.yb[:, p.j] < 0.5).all())):
                raise RuntimeError(f"pair batch for {self.attr_names[p.j]} at step {step} is not A = 1 / B = 0: "
                                   "the batch does not come from this model's batch_sampler")
        return [p for p in out if len(p.ya)]

    # --- the data flow (§1.3) ------------------------------------------------------------------
    def breed(self, pairs: list[Pair]) -> list[dict[str, Tensor]]:
        """A1, B1, A2, B2 of eq. 2 (or eq. 9 with ``annihilate=false``) for every pair; one encoder
        and one decoder pass over all of them. Also ``ea`` (A's latent), for the prototypes."""
        ea_eb, maps_ab = self.encoder.features(torch.cat([t for p in pairs for t in (p.xa, p.xb)]))
        latents, sizes, eas, ebs, maps = [], [], [], [], []
        at = 0
        for p in pairs:
            b = len(p.xa)
            ea, eb = ea_eb[at:at + b], ea_eb[at + b:at + 2 * b]
            if self.config.skips:  # each child decodes with its parent's maps: A1, B1, A2, B2 ← A, B, A, B
                ma, mb = [m[at:at + b] for m in maps_ab], [m[at + b:at + 2 * b] for m in maps_ab]
                maps.append([torch.cat([x, y, x, y]) for x, y in zip(ma, mb)])
            at += 2 * b
            j = p.j
            if self.config.annihilate:
                kids = [ea, self.with_piece(eb, j, 0.0), self.with_piece(ea, j, 0.0), self.with_piece(eb, j, ea[:, self.piece(j)])]
            else:
                kids = [ea, eb, self.with_piece(ea, j, eb[:, self.piece(j)]), self.with_piece(eb, j, ea[:, self.piece(j)])]
            latents += kids
            sizes.append(b)
            eas.append(ea)
            ebs.append(eb)
        joined = [torch.cat(level) for level in zip(*maps)] if self.config.skips else None
        images, masks = self.decoder.split(torch.cat(latents), joined)
        out, at = [], 0
        for p, b, ea, eb in zip(pairs, sizes, eas, ebs):
            a1, b1, a2, b2 = images[at:at + 4 * b].split(b)
            kid = {"ea": ea, "eb": eb}
            if self.config.children == "residual":
                a2, b2 = self.residual_children(p, a1, b1, a2, b2)
            elif self.config.children == "masked":
                kid["mA2"], kid["mB2"] = masks[at + 2 * b:at + 4 * b].split(b)
                a2, b2 = self.masked_children(p, a1, b1, a2, b2, kid["mA2"], kid["mB2"])
            at += 4 * b
            out.append({"A1": a1, "B1": b1, "A2": a2, "B2": b2, **kid})
        return out

    @staticmethod
    def residual_children(p: Pair, a1: Tensor, b1: Tensor, a2: Tensor, b2: Tensor) -> tuple[Tensor, Tensor]:
        """``children=residual``: A2 = A + (Dec(h_A2) − A1), B2 = B + (Dec(h_B2) − B1), in [−1, 1]: each
        child is its parent plus the change its new latent makes to the parent's own decode (B1 is B's
        decode with piece i as eq. 3 reconstructs it). The gradient flows through both decodes, so the
        critic trains only the difference: a shift of every decode alike cancels (with the baseline
        detached, the critic's push moved every decode and the reconstruction fell apart, results §12)."""
        return (p.xa + a2 - a1).clamp(-1, 1), (p.xb + b2 - b1).clamp(-1, 1)

    @staticmethod
    def masked_children(p: Pair, a1: Tensor, b1: Tensor, a2: Tensor, b2: Tensor, ma2: Tensor, mb2: Tensor) -> tuple[Tensor, Tensor]:
        """``children=masked``: A2 = A + m_A2 ⊙ (Dec(h_A2) − A1), B2 = B + m_B2 ⊙ (Dec(h_B2) − B1), in
        [−1, 1]: the residual children of :meth:`residual_children` with the change gated by the mask
        the decoder draws from the child's latent (m = 0: the parent, untouched; m = 1: the residual child)."""
        return (p.xa + ma2 * (a2 - a1)).clamp(-1, 1), (p.xb + mb2 * (b2 - b1)).clamp(-1, 1)

    def child_labels(self, p: Pair) -> tuple[Tensor, Tensor]:
        """What the critic is told B2 and A2 are (``critic_labels``)."""
        return (p.ya, p.yb) if self.config.critic_labels == "donor" else self.intended_labels(p)

    @staticmethod
    def intended_labels(p: Pair) -> tuple[Tensor, Tensor]:
        """B2's and A2's labels as the swap means them: the recipient's own, attribute i flipped."""
        yb2, ya2 = p.yb.clone(), p.ya.clone()
        yb2[:, p.j], ya2[:, p.j] = 1.0, 0.0
        return yb2, ya2

    def critic_scores(self, pairs: list[Pair], kids: list[dict[str, Tensor]], detach: bool) -> dict[str, list[Tensor]]:
        """Score j of every real A, B and child B2, A2, each source in its own critic batch (the code)."""
        d = self.critic
        lab = [self.child_labels(p) for p in pairs]
        f = (lambda t: t.detach()) if detach else (lambda t: t)
        cat = torch.cat
        sizes = [len(p.ya) for p in pairs]
        cols = torch.cat([torch.full((b,), p.j, dtype=torch.long) for b, p in zip(sizes, pairs)]).to(pairs[0].xa.device)

        def pick(scores: Tensor) -> list[Tensor]:
            return list(scores.gather(1, cols[:, None]).squeeze(1).split(sizes))

        out = {"B2": pick(d(cat([f(k["B2"]) for k in kids]), cat([lb[0] for lb in lab]))),
               "A2": pick(d(cat([f(k["A2"]) for k in kids]), cat([lb[1] for lb in lab])))}
        if detach:
            out["A"] = pick(d(cat([p.xa for p in pairs]), cat([p.ya for p in pairs])))
            out["B"] = pick(d(cat([p.xb for p in pairs]), cat([p.yb for p in pairs])))
        return out

    # --- the losses (each next to its equation) ------------------------------------------------
    @staticmethod
    def rec_loss(x: Tensor, x_rec: Tensor) -> Tensor:
        """One term of eq. 3, ‖x − x₁‖₁, as the code: mean |·| over the [0, 1] image (its |·|/255).
        Inputs are in [−1, 1], so the mean absolute difference is halved."""
        return (x - x_rec).abs().mean() * 0.5

    def critic_loss(self, s: dict[str, list[Tensor]]) -> Tensor:
        """Summed over pairs. ``wgan``: Arjovsky et al. eq. 3 as a loss, for B2 against A and A2
        against B (the code's loss_D). ``nonsaturating``: L_D = L_D1 + L_D0 (eqs. 6–8)."""
        total = 0.0
        for a, b, b2, a2 in zip(s["A"], s["B"], s["B2"], s["A2"]):
            if self.config.gan != "nonsaturating":
                total = total + adv.wgan_critic_loss(a, b2) + adv.wgan_critic_loss(b, a2)
            else:
                total = total + adv.d_loss(a, b2) + adv.d_loss(b, a2)  # L_D1 + L_D0
        return total

    def gradient_penalty(self, pairs: list[Pair], kids: list[dict[str, Tensor]]) -> Tensor:
        """``gan=wgan-gp`` (Gulrajani et al. 2017, eq. 3, ours here): Σ over pairs of λ_gp E[(‖∇ f(x̂, ŷ)_j‖₂ − 1)²]
        on interpolates of (A, y_A) and (B2, B2's labels), and of (B, y_B) and (A2, A2's labels), as the critic
        scores each (:meth:`child_labels`), j the pair's attribute: the 1-Lipschitz constraint in place of
        clipping. The labels are interpolated too and the gradient is taken in both, since a real face and
        a child carry different label vectors: a penalty in the image alone let the critic part them by
        their labels, and its scores ran to 10⁵ within 550 steps (results §12)."""
        total = 0.0
        for p, k in zip(pairs, kids):
            lb2, la2 = self.child_labels(p)
            for real, y_real, child, y_child in ((p.xa, p.ya, k["B2"], lb2), (p.xb, p.yb, k["A2"], la2)):
                total = total + adv.gradient_penalty(lambda x, y, j=p.j: self.critic(x, y)[:, j], real, child,
                                                     self.config.gp_weight, real_condition=y_real,
                                                     fake_condition=y_child)
        return total

    def gan_loss(self, s: dict[str, list[Tensor]]) -> Tensor:
        """The generator's GAN term, summed over pairs: ``wgan`` −E f(B2) − E f(A2) (the code's loss_G);
        ``nonsaturating`` eq. 4: −E log D(B2) − E log D(A2)."""
        total = 0.0
        for b2, a2 in zip(s["B2"], s["A2"]):
            if self.config.gan != "nonsaturating":
                total = total + adv.wgan_generator_loss(b2) + adv.wgan_generator_loss(a2)
            else:
                total = total + adv.g_loss(b2) + adv.g_loss(a2)
        return total

    def classify(self, x: Tensor) -> Tensor:
        """C's logits; under ``cls_noise`` = σ > 0, of x + N(0, σ²) (images in [−1, 1]), in C's own
        step and in the generator's alike (results §12: C read bangs on every added-Bangs child, the
        judge on 0.630 of them; fine noise that fools a clean C is drowned by the added noise)."""
        if self.config.cls_noise:
            x = x + self.config.cls_noise * torch.randn_like(x)
        return self.classifier(x)

    def class_loss(self, pairs: list[Pair], kids: list[dict[str, Tensor]]) -> Tensor:
        """``lambda_cls`` (AttGAN eq. 10, ours here): Σ over pairs of bce(C(B2), y_B2) + bce(C(A2), y_A2),
        the intended labels (:meth:`intended_labels`), a mean over children and attributes."""
        total = 0.0
        for p, k in zip(pairs, kids):
            yb2, ya2 = self.intended_labels(p)
            lb, la = self.classify(torch.cat([k["B2"], k["A2"]])).split([len(yb2), len(ya2)])  # one pass (no BN)
            total = total + F.binary_cross_entropy_with_logits(lb, yb2) + F.binary_cross_entropy_with_logits(la, ya2)
        return total

    def residual_loss(self, pairs: list[Pair], kids: list[dict[str, Tensor]]) -> Tensor:
        """``lambda_residual`` (Shen & Liu 2017's ‖r‖₁, ours here): Σ over pairs of ‖B2 − B‖₁ + ‖A2 − A‖₁,
        each a mean as eq. 3's :meth:`rec_loss`, i.e. the mean absolute change of each child on the
        [0, 1] image."""
        return sum(self.rec_loss(p.xb, k["B2"]) + self.rec_loss(p.xa, k["A2"]) for p, k in zip(pairs, kids))

    @staticmethod
    def mask_loss(kids: list[dict[str, Tensor]]) -> Tensor:
        """``lambda_mask`` (GANimation's λ_A‖A‖₁, Pumarola et al. 2018, eq. 2, ours here): Σ over pairs of
        mean(m_B2) + mean(m_A2), the share of each child's pixels its mask opens. An area price, where
        ``lambda_residual`` prices the change's size: inside the mask a change is free to be bold."""
        return sum(k["mB2"].mean() + k["mA2"].mean() for k in kids)

    # --- the players ----------------------------------------------------------------------------
    def configure_optimizers(self):
        c = self.config
        opts = {"generator": torch.optim.RMSprop([*self.encoder.parameters(), *self.decoder.parameters()],
                                                 lr=c.lr, alpha=c.rmsprop_alpha),
                "critic": torch.optim.RMSprop(self.critic.parameters(), lr=c.lr, alpha=c.rmsprop_alpha)}
        if c.lambda_cls:
            opts["classifier"] = torch.optim.RMSprop(self.classifier.parameters(), lr=c.lr, alpha=c.rmsprop_alpha)
        return opts

    def classifier_step(self, pairs, opt) -> Tensor:
        """``lambda_cls``: C learns every attribute from the real A's and B's (AttGAN eq. 9)."""
        x = torch.cat([t for p in pairs for t in (p.xa, p.xb)])
        y = torch.cat([t for p in pairs for t in (p.ya, p.yb)])
        loss = F.binary_cross_entropy_with_logits(self.classify(x), y)
        opt.step("classifier", loss)
        return loss.detach()

    def critic_step(self, pairs, kids, opt) -> Tensor:
        """One critic update on the detached children, then (WGAN) w ← clip(w, −c, c) (Alg. 1 line 7);
        ``wgan-gp`` adds :meth:`gradient_penalty` instead of clipping."""
        loss = self.critic_loss(self.critic_scores(pairs, kids, detach=True))
        if self.config.gan == "wgan-gp":
            loss = loss + self.gradient_penalty(pairs, kids)
        opt.step("critic", loss)
        if self.config.gan == "wgan":
            adv.clip_weights(self.critic, self.config.clip)
        return loss.detach()

    def generator_step(self, pairs, kids, opt) -> dict[str, Tensor]:
        """L_G = L_rec + λ_gan L_GAN (eq. 5) into the encoder and decoder (+ λ_cls L_cls + λ_res L_res, ours)."""
        rec = sum(self.rec_loss(p.xa, k["A1"]) + self.rec_loss(p.xb, k["B1"]) for p, k in zip(pairs, kids))
        gan = self.gan_loss(self.critic_scores(pairs, kids, detach=False))
        total = rec + self.config.lambda_gan * gan
        out = {"rec": rec.detach(), "gan_g": gan.detach()}
        if self.config.lambda_cls:
            cls = self.class_loss(pairs, kids)
            total = total + self.config.lambda_cls * cls
            out["class_g"] = cls.detach()
        if self.config.lambda_residual:
            res = self.residual_loss(pairs, kids)
            total = total + self.config.lambda_residual * res
            out["residual_g"] = res.detach()
        if self.config.children == "masked":
            m = self.mask_loss(kids)
            total = total + self.config.lambda_mask * m
            out["mask_g"] = m.detach()
        opt.step("generator", total)
        return {**out, "generator": total.detach()}

    @torch.no_grad()
    def update_prototypes(self, pairs: list[Pair], kids: list[dict[str, Tensor]]) -> None:
        """Running means of piece j over the training A's (i = 1) and B's (i = 0): the cumulative mean
        of the batch means for the first 1/(1 − momentum) updates, then an exponential moving average."""
        for p, k in zip(pairs, kids):
            s = self.piece(p.j)
            count = float(self.prototype_count[p.j])
            m = min(self.config.prototype_momentum, count / (count + 1))
            self.prototypes[p.j].mul_(m).add_((1 - m) * k["ea"][:, s].detach().mean(0))
            self.off_prototypes[p.j].mul_(m).add_((1 - m) * k["eb"][:, s].detach().mean(0))
            self.prototype_count[p.j] += 1

    def train_step(self, batch, step, opt):
        pairs = self.pairs(batch, step)
        if not pairs:  # random_pairs drew no useful pair
            return {"useful_pairs": torch.zeros(())}
        kids = self.breed(pairs)
        d_losses = [self.critic_step(pairs, kids, opt) for _ in range(self.critic_iterations(step))]
        c_loss = self.classifier_step(pairs, opt) if self.config.lambda_cls else None
        losses = self.generator_step(pairs, kids, opt)
        if c_loss is not None:
            losses["classifier"] = c_loss
        self.update_prototypes(pairs, kids)
        losses["critic"] = d_losses[-1]
        if self.config.schedule == "random_pairs":
            losses["useful_pairs"] = torch.tensor(float(len(pairs[0].ya)))
        return losses

    # --- user-facing operations ------------------------------------------------------------
    def encode(self, images: Tensor) -> Code:
        """The flattened latent (channel-major, so every piece is a contiguous run of columns);
        parts: one per attribute, and ``z``."""
        h = self._latent(images)
        hw = h.shape[2] * h.shape[3]
        n = len(self.attr_names)
        slices = {a: slice(self.piece(j).start * hw, self.piece(j).stop * hw) for j, a in enumerate(self.attr_names)}
        slices["z"] = slice(self.piece(n).start * hw, self.piece(n).stop * hw)
        return Code(h.flatten(1), slices)

    def decode(self, code: Code) -> Tensor:
        self.require("decode")
        width = self.latent_shape[0] * self.latent_shape[1] * self.latent_shape[2]
        if code.tensor.dim() != 2 or code.tensor.shape[1] != width:
            raise UsageError(f"{self.name}.decode: a code of {width} columns ({' × '.join(map(str, self.latent_shape))}) "
                             f"is needed, got shape {tuple(code.tensor.shape)}")
        return signed_to_images(self.decoder(code.tensor.view(-1, *self.latent_shape)))

    @torch.no_grad()
    def reconstruct(self, images: Tensor) -> Tensor:
        return self._decode_latent(*self._features(images))

    def _latent(self, images: Tensor) -> Tensor:
        return self.encoder(images_to_signed(self.check_images(images)))

    def _features(self, images: Tensor) -> tuple[Tensor, list[Tensor] | None]:
        """(the latent, the encoder maps the decoder joins under ``skips``, else None)."""
        if not self.config.skips:
            return self._latent(images), None
        return self.encoder.features(images_to_signed(self.check_images(images)))

    def _decode_latent(self, h: Tensor, maps: list[Tensor] | None = None) -> Tensor:
        return signed_to_images(self.decoder(h, maps))

    def _decode_latent_mask(self, h: Tensor, maps: list[Tensor] | None = None) -> tuple[Tensor, Tensor]:
        """``children=masked``: the decode in [0, 1] and its mask."""
        image, mask = self.decoder.split(h, maps)
        return signed_to_images(image), mask

    @torch.no_grad()
    def representation(self, images: Tensor) -> Tensor:
        """Each latent channel's spatial mean — (N, 4·width), piece by piece, then z — the fixed-size
        code the metrics score (the flattened map has 4·width·(s/8)² columns)."""
        return self._latent(images).mean((2, 3))

    def retrieval_chunks(self) -> dict[str, slice]:
        n = len(self.attr_names)
        out = {a: self.piece(j) for j, a in enumerate(self.attr_names)}
        out["z"] = self.piece(n)
        return out

    @torch.no_grad()
    def swap(self, images_a: Tensor, images_b: Tensor, chunks=None, attributes=None, both: bool = False, **kwargs: Any):
        """b with the listed pieces of a (attribute names, ``z``, or piece numbers; ``attributes``
        is the same list by name). ``both=True``: the pair both ways — (b with a's pieces, a with b's)."""
        self.require("swap")
        if kwargs:
            raise UsageError(f"{self.name}.swap: unknown option(s) {', '.join(sorted(kwargs))}; it takes chunks, "
                             "attributes and both")
        names = list(chunks or []) + list(attributes or [])
        if not names:
            raise UsageError(f"{self.name}.swap: name the pieces to swap ({', '.join(self.attr_names)} or z)")
        js = sorted({self.piece_index(c) for c in names})
        (ha, maps_a), (hb, maps_b) = self._features(images_a), self._features(images_b)
        if len(ha) != len(hb):
            raise UsageError(f"swap needs as many images in a as in b ({len(ha)} vs {len(hb)})")
        b_new, a_new = hb.clone(), ha.clone()
        for j in js:
            b_new[:, self.piece(j)], a_new[:, self.piece(j)] = ha[:, self.piece(j)], hb[:, self.piece(j)]
        if both:
            return self._output(images_b, hb, b_new, maps_b), self._output(images_a, ha, a_new, maps_a)
        return self._output(images_b, hb, b_new, maps_b)

    def _output(self, images: Tensor, h: Tensor, h_new: Tensor, maps: list[Tensor] | None = None) -> Tensor:
        """The decoded child, or under ``edit_output=residual`` the input plus the decoder's change
        (``h``: the input's own latent, ``h_new``: the edited one; ``maps``: the input's encoder maps
        under ``skips``)."""
        if self.config.edit_output == "decoded":
            return self._decode_latent(h_new, maps)
        out, drawn = (self._decode_latent_mask(h_new, maps) if self.config.children == "masked"
                      else (self._decode_latent(h_new, maps), None))
        rec = self._decode_latent(h, maps)
        return residual_output(self.check_images(images), out, rec, self._edit_mask(out - rec, drawn))

    def _edit_mask(self, change: Tensor, drawn: Tensor | None) -> Tensor | None:
        """The weight on a residual edit's change: none under ``edit_output=residual``; under ``masked``
        the decoder's own mask where it draws one (``children=masked``), else the change's own magnitude."""
        if self.config.edit_output != "masked":
            return None
        return drawn if drawn is not None else change_mask(change)

    @torch.no_grad()
    def crossbreed(self, images_a: Tensor, images_b: Tensor, attribute, strength: float = 1.0) -> dict[str, Tensor]:
        """The four children of eq. 2 (eq. 9 with ``annihilate=false``) for test pairs: A1, B1, A2
        (A without the attribute) and B2 (B with A's piece) — images in [0, 1]. ``attribute`` is one
        name or a list (Fig. 5: several pieces at once; the code's ``swap_attribute``). ``strength`` v
        (ours; 1 is the paper's swap) moves each child's piece v of the way from its parent's to the
        swapped value, so v > 1 carries past it as ``edit``'s value does: B2's piece off + v·(a_i − off)
        and A2's a_i + v·(off − a_i), with off = 0 under annihilation (B1's piece) or b_i without."""
        names = [attribute] if isinstance(attribute, str) else list(attribute)
        js = sorted({self.piece_index(a) for a in names})
        if not js or len(self.attr_names) in js:
            raise UsageError("crossbreed takes attributes, not z")
        (ha, maps_a), (hb, maps_b) = self._features(images_a), self._features(images_b)
        if len(ha) != len(hb):
            raise UsageError(f"crossbreed needs as many images in a as in b ({len(ha)} vs {len(hb)})")
        a1, b1, a2, b2 = ha, hb.clone(), ha.clone(), hb.clone()
        for j in js:
            s = self.piece(j)
            off = torch.zeros_like(hb[:, s]) if self.config.annihilate else hb[:, s]
            b2[:, s] = (1 - strength) * off + strength * ha[:, s]  # exactly the swap at strength 1
            a2[:, s] = (1 - strength) * ha[:, s] + strength * off
            if self.config.annihilate:
                b1[:, s] = 0.0
        parent_maps = {"A": maps_a, "B": maps_b}
        decoded = {k: self._decode_latent_mask(h, parent_maps[k[0]]) if self.config.children == "masked"
                   else (self._decode_latent(h, parent_maps[k[0]]), None)
                   for k, h in zip(("A1", "B1", "A2", "B2"), (a1, b1, a2, b2))}
        kids = {k: v[0] for k, v in decoded.items()}
        if self.config.edit_output in ("residual", "masked"):
            # each child is its parent plus the change from the parent's decode *as eq. 3 trains it*:
            # A1 for A, B1 for B (piece i annihilated). That is also what children=residual subtracts in
            # training; B's plain decode Dec(h_B), with its own b_i, is a latent annihilation never
            # decodes (results §12: with it the adds of one model fell from 0.70–0.97 to 0.20–0.30)
            x = {"A": self.check_images(images_a), "B": self.check_images(images_b)}
            rec = {"A": kids["A1"], "B": kids["B1"]}
            kids = {k: residual_output(x[k[0]], v, rec[k[0]], self._edit_mask(v - rec[k[0]], decoded[k][1]))
                    for k, v in kids.items()}
        return kids

    def _references(self, j: int, reference: Tensor | None, n: int) -> tuple[Tensor, Tensor | float]:
        """(on, off): piece j with the attribute — the reference image's, or the prototype — and the
        attribute-off piece the model was trained on: 0 (annihilation), or under ``annihilate=false``
        the running mean over the training B's."""
        if reference is not None:
            ref = self._latent(self.check_images(reference))[:, self.piece(j)]
            if len(ref) not in (1, n):
                raise UsageError(f"reference: one image or one per edited image ({n}), got {len(ref)}")
            on = ref.expand(n, *ref.shape[1:])
        else:
            on = self.prototypes[j].expand(n, *self.prototypes.shape[1:])
        needs_prototype = reference is None or not self.config.annihilate
        if needs_prototype and float(self.prototype_count[j]) == 0:
            raise UsageError(f"{self.name} has no {self.attr_names[j]} prototype yet (the model is untrained); "
                             + ("pass reference=IMAGES (an image with the attribute) or edit with value=0"
                                if self.config.annihilate else "train it first (annihilate=false edits need it)"))
        off = 0.0 if self.config.annihilate else self.off_prototypes[j].expand(n, *self.off_prototypes.shape[1:])
        return on, off

    @torch.no_grad()
    def edit(self, images: Tensor, attribute: str, value=1.0, reference: Tensor | None = None, **kwargs: Any) -> Tensor:
        """Piece ``attribute`` := (1 − v)·off + v·on, v = ``value`` (a number or one per image): ``on`` is
        the reference image's piece or the attribute's prototype, ``off`` the attribute-off piece the model
        was trained on — 0 under annihilation, so 0 annihilates and v scales the piece as the code's
        ``test.py`` (§1.6); under ``annihilate=false`` the mean piece of the training B's."""
        self.require("edit")
        if kwargs:
            raise UsageError(f"{self.name}.edit: unknown option(s) {', '.join(sorted(kwargs))}; it takes reference")
        h, maps = self._features(images)
        values = torch.as_tensor(value, dtype=h.dtype, device=h.device)
        if values.dim() > 1 or (values.dim() == 1 and len(values) != len(h)):
            raise UsageError(f"edit value must be a number or one number per image ({len(h)}), got shape {tuple(values.shape)}")
        return self._output(images, h, self._set_piece(h, self._attribute_piece(attribute), values, reference), maps)

    @torch.no_grad()
    def edit_many(self, images: Tensor, values: dict[str, float]) -> Tensor:
        """Several pieces set at once (each as ``edit`` sets one, from the prototypes), one decode."""
        self.require("edit")
        h, maps = self._features(images)
        h_new = h
        for attribute, value in values.items():
            h_new = self._set_piece(h_new, self._attribute_piece(attribute), torch.tensor(float(value), dtype=h.dtype, device=h.device))
        return self._output(images, h, h_new, maps)

    def _attribute_piece(self, attribute: str) -> int:
        j = self.piece_index(attribute)
        if j == len(self.attr_names):
            raise UsageError(f"{self.name}.edit: z is not an attribute; edit one of {', '.join(self.attr_names)}")
        return j

    def _set_piece(self, h: Tensor, j: int, values: Tensor, reference: Tensor | None = None) -> Tensor:
        """``h`` with piece j := (1 − v)·off + v·on (0 under annihilation when every v is 0)."""
        if self.config.annihilate and bool((values == 0).all()):
            return self.with_piece(h, j, 0.0)
        on, off = self._references(j, reference, len(h))
        v = values.expand(len(h)).reshape(-1, 1, 1, 1)
        return self.with_piece(h, j, (1 - v) * off + v * on)

    @torch.no_grad()
    def attribute_values(self, images: Tensor) -> dict[str, Tensor]:
        """Where each piece lies on the line ``edit`` draws: v = ⟨p − off, on − off⟩ / ‖on − off‖², so the
        prototype reads 1 and the off piece 0 (attributes without a prototype yet are left out)."""
        h = self._latent(images)
        out = {}
        for j, a in enumerate(self.attr_names):
            if float(self.prototype_count[j]) == 0:
                continue
            on, off = self._references(j, None, len(h))
            d = (on - off).flatten(1)
            out[a] = ((h[:, self.piece(j)] - off).flatten(1) * d).sum(1) / d.pow(2).sum(1).clamp_min(1e-12)
        return out

    @torch.no_grad()
    def interpolate(self, images: Tensor, references: dict[str, Tensor], weights: dict[str, float]) -> Tensor:
        """Fig. 4 / the code's interpolation: for each named attribute, piece := λ·a_ref + (1 − λ)·b,
        returned as every edit is (``edit_output``)."""
        if set(references) != set(weights):
            raise UsageError("interpolate: give one reference and one weight per attribute")
        h, maps = self._features(images)
        out = h.clone()
        for name, ref in references.items():
            j = self.piece_index(name)
            s = self.piece(j)
            r = self._latent(ref)[:, s]
            if len(r) not in (1, len(h)):
                raise UsageError(f"interpolate: the {name} reference has {len(r)} images; give one or one per image ({len(h)})")
            lam = float(weights[name])
            out[:, s] = lam * r.expand(len(h), *r.shape[1:]) + (1 - lam) * h[:, s]
        return self._output(images, h, out, maps)

    def visuals(self, batch):
        x = batch["image"][:8]
        rows = {"input": x, "reconstruction": self.reconstruct(x)}
        a = self.attr_names[0]
        rows[f"{a} annihilated"] = self.edit(x, a, 0.0)
        if len(x) > 1:
            rows[f"{a} piece from the next image"] = self.swap(x.roll(-1, 0), x, [a])
        return rows
