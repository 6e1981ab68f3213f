"""The one block library every model builds from.

Layers come as flat lists (``conv_block``, ``linear_block``) so that a model's ``nn.Sequential``
reads like the paper's layer table and its parameter names stay short (``conv.0.weight``).
On top of them:

* ``conv_stack`` / ``deconv_stack``: DCGAN-style strided stacks with width, norm, activation,
  bias, spectral-norm and layer-order options (mddAE, mixing, and the GAN methods' D/G);
* ``ResidualBlock``: the pre-activation-free residual block of the "residual" layouts
  (IFcVAE-GAN §3.2 proposes one);
* ``ConvEncoder`` / ``ConvDecoder``: the β-VAE / disentanglement_lib layout of the baselines.

Options, everywhere:

* ``norm``: ``"batch"`` (BatchNorm2d, or BatchNorm1d after a Linear), ``"instance"``
  (InstanceNorm2d without affine), ``"none"``;
* ``act``: ``"relu"``, ``"lrelu"`` (slope 0.2, DCGAN), ``"tanh"``, ``"sigmoid"``, ``"none"``;
* ``order``: ``"conv-norm-act"`` (DCGAN) or ``"conv-act-norm"`` (AlexNet-style, ReLU then BN);
* ``spectral``: wrap the conv/linear in spectral normalisation (Miyato et al. 2018).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

ACTIVATIONS = ("relu", "lrelu", "tanh", "sigmoid", "none")
NORMS = ("batch", "instance", "none")


def down_sizes(size: int, stop: int = 7) -> list[int]:
    """Spatial sizes after each stride-2 layer until the map is at most ``stop`` wide:
    64 → [32, 16, 8, 4], 32 → [16, 8, 4], 28 → [14, 7]."""
    out, s = [], size
    while s > stop:
        if s % 2:
            raise ValueError(f"image size {size} does not halve evenly down to {stop} or less")
        s //= 2
        out.append(s)
    if not out:
        raise ValueError(f"image size {size} is too small (need more than {stop} pixels)")
    return out


def scaled(channels: int, width: float, minimum: int = 8) -> int:
    """``channels × width`` rounded, at least ``minimum`` (a width multiplier for CPU presets)."""
    return max(minimum, int(round(channels * width)))


def norm_layer(kind: str | None, channels: int, dims: int = 2) -> nn.Module:
    if kind in (None, "none"):
        return nn.Identity()
    if kind == "batch":
        return nn.BatchNorm2d(channels) if dims == 2 else nn.BatchNorm1d(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=False)
    raise ValueError(f"unknown normalisation {kind!r}; valid: {', '.join(NORMS)}")


def activation(kind: str) -> nn.Module:
    if kind == "relu":
        return nn.ReLU()
    if kind == "lrelu":
        return nn.LeakyReLU(0.2)
    if kind == "tanh":
        return nn.Tanh()
    if kind == "sigmoid":
        return nn.Sigmoid()
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown activation {kind!r}; valid: {', '.join(ACTIVATIONS)}")


def _spectral(module: nn.Module, on: bool) -> nn.Module:
    return nn.utils.parametrizations.spectral_norm(module) if on else module


def _finish(core: nn.Module, c_out: int, norm: str | None, act: str | None, order: str, dims: int) -> list[nn.Module]:
    """``core`` followed by its norm and activation in ``order``; a norm or activation of
    ``None`` adds no layer at all (not even an Identity), so layer lists stay as written."""
    tail: list[nn.Module] = []
    n = [] if norm is None else [norm_layer(norm, c_out, dims)]
    a = [] if act is None else [activation(act)]
    if order == "conv-norm-act":
        tail = n + a
    elif order == "conv-act-norm":
        tail = a + n
    else:
        raise ValueError(f"unknown layer order {order!r}; valid: conv-norm-act, conv-act-norm")
    return [core, *tail]


def conv_block(c_in: int, c_out: int, kernel: int, stride: int = 1, padding: int = 0, *,
               norm: str | None = None, act: str | None = None, bias: bool = True, transpose: bool = False,
               spectral: bool = False, groups: int = 1, order: str = "conv-norm-act",
               output_padding: int = 0) -> list[nn.Module]:
    """[conv (or transposed conv), norm, activation] as a flat list. ``output_padding`` (transposed
    convs only) adds rows to one side of the output, e.g. k3 s2 p1 op1 doubles the size exactly."""
    if transpose:
        conv = nn.ConvTranspose2d(c_in, c_out, kernel, stride, padding, output_padding, bias=bias, groups=groups)
    elif output_padding:
        raise ValueError("output_padding applies to transposed convolutions only")
    else:
        conv = nn.Conv2d(c_in, c_out, kernel, stride, padding, bias=bias, groups=groups)
    conv = _spectral(conv, spectral)
    return _finish(conv, c_out, norm, act, order, 2)


def linear_block(d_in: int, d_out: int, *, norm: str | None = None, act: str | None = None, bias: bool = True,
                 dropout: float | None = None, spectral: bool = False) -> list[nn.Module]:
    """[Linear, norm (BatchNorm1d), activation, Dropout] as a flat list."""
    layers = _finish(_spectral(nn.Linear(d_in, d_out, bias=bias), spectral), d_out, norm, act, "conv-norm-act", 1)
    if dropout is not None:
        layers.append(nn.Dropout(dropout))
    return layers


def conv_stack(c_in: int, widths: Sequence[int], kernel: int = 4, stride: int = 2, padding: int = 1, *,
               norm: str | None = "batch", act: str | None = "lrelu", bias: bool = True, spectral: bool = False,
               order: str = "conv-norm-act") -> list[nn.Module]:
    """A DCGAN-style down-sampling stack: one ``conv_block`` per width (k4 s2 p1 by default)."""
    layers: list[nn.Module] = []
    for w in widths:
        layers += conv_block(c_in, w, kernel, stride, padding, norm=norm, act=act, bias=bias, spectral=spectral,
                             order=order)
        c_in = w
    return layers


def deconv_stack(widths: Sequence[int], c_out: int, kernel: int = 4, stride: int = 2, padding: int = 1, *,
                 norm: str | None = "batch", act: str | None = "relu", bias: bool = True) -> list[nn.Module]:
    """A DCGAN-style up-sampling stack: transposed convs from ``widths[0]`` through ``widths[1:]``
    to ``c_out``;
    norm and activation after every layer but the last (the model picks the output non-linearity)."""
    layers: list[nn.Module] = []
    chans = list(widths)
    for i, w in enumerate(chans):
        last = i == len(chans) - 1
        out = c_out if last else chans[i + 1]
        layers += conv_block(w, out, kernel, stride, padding, norm=None if last else norm, act=None if last else act,
                             bias=bias, transpose=True)
    return layers


class ResidualBlock(nn.Module):
    """x + F(x), F = conv3-norm-act-conv3-norm; the activation is applied after the sum. A 1×1
    projection (with norm) matches channels or stride when they change (He et al. 2016)."""

    def __init__(self, c_in: int, c_out: int | None = None, stride: int = 1, *, norm: str = "batch",
                 act: str = "relu", transpose: bool = False) -> None:
        super().__init__()
        c_out = c_out or c_in
        first = conv_block(c_in, c_out, 4 if transpose and stride == 2 else 3, stride, 1, norm=norm, act=act,
                           bias=norm == "none", transpose=transpose)
        self.body = nn.Sequential(*first, *conv_block(c_out, c_out, 3, 1, 1, norm=norm, bias=norm == "none"))
        if c_in == c_out and stride == 1:
            self.skip: nn.Module = nn.Identity()
        else:
            proj = conv_block(c_in, c_out, 2 if transpose and stride == 2 else 1, stride, 0, norm=norm,
                              bias=norm == "none", transpose=transpose)
            self.skip = nn.Sequential(*proj)
        self.act = activation(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + self.skip(x))


def _widths(channels: Sequence[int], n: int, from_end: bool) -> list[int]:
    """``n`` widths from ``channels``: cut (the last ``n`` or first ``n``) or padded with the last."""
    if len(channels) >= n:
        return list(channels)[-n:] if from_end else list(channels)[:n]
    return list(channels) + [channels[-1]] * (n - len(channels))


class ConvEncoder(nn.Module):
    """k4 s2 p1 convolutions down to ≤7 px, then FC layers to ``out_dim`` (the β-VAE/
    disentanglement_lib layout: 32-32-64-64 channels, a 256-unit hidden layer)."""

    def __init__(self, in_channels: int, size: int, out_dim: int, channels: Sequence[int] = (32, 32, 64, 64),
                 hidden: int = 256, norm: str = "none", act: str = "relu") -> None:
        super().__init__()
        sizes = down_sizes(size)
        chans = _widths(channels, len(sizes), from_end=True)
        self.conv = nn.Sequential(*conv_stack(in_channels, chans, norm=norm, act=act))
        self.flat = chans[-1] * sizes[-1] ** 2
        head: list[nn.Module] = [nn.Flatten()]
        if hidden:
            head += [*linear_block(self.flat, hidden, act=act), nn.Linear(hidden, out_dim)]
        else:
            head += [nn.Linear(self.flat, out_dim)]
        self.head = nn.Sequential(*head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.conv(x))


class ConvDecoder(nn.Module):
    """Mirror of :class:`ConvEncoder`: FC layers to a ≤7-px map, k4 s2 p1 transposed convs up."""

    def __init__(self, in_dim: int, out_channels: int, size: int, channels: Sequence[int] = (64, 64, 32, 32),
                 hidden: int = 256, norm: str = "none", act: str = "relu") -> None:
        super().__init__()
        sizes = down_sizes(size)
        chans = _widths(channels, len(sizes), from_end=False)
        self.start = (chans[0], sizes[-1], sizes[-1])
        flat = int(math.prod(self.start))
        fc = [*linear_block(in_dim, hidden, act=act), *linear_block(hidden, flat, act=act)] if hidden \
            else linear_block(in_dim, flat, act=act)
        self.fc = nn.Sequential(*fc)
        self.deconv = nn.Sequential(*deconv_stack(chans, out_channels, norm=norm, act=act))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Returns logits / pre-activation images; the model chooses the output non-linearity."""
        return self.deconv(self.fc(z).view(-1, *self.start))
