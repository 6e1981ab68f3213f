"""Convolutional stacks shared by the models: encoders and decoders for 28/32/64/128-px inputs."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn


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


def norm_layer(kind: str | None, channels: int, dims: int = 2) -> nn.Module:
    if kind in (None, "none"):
        return nn.Identity()
    if kind == "batch":
        return nn.BatchNorm2d(channels) if dims == 2 else nn.BatchNorm1d(channels)
    if kind == "instance":
        return nn.InstanceNorm2d(channels, affine=False)
    raise ValueError(f"unknown normalisation {kind!r}")


class ConvEncoder(nn.Module):
    """k4 s2 p1 convolutions down to ≤7 px, then FC layers to ``out_dim`` (the β-VAE/
    disentanglement_lib layout: 32-32-64-64 channels, a 256-unit hidden layer)."""

    def __init__(
        self,
        in_channels: int,
        size: int,
        out_dim: int,
        channels: Sequence[int] = (32, 32, 64, 64),
        hidden: int = 256,
        norm: str | None = None,
        activation: type[nn.Module] = nn.ReLU,
    ) -> None:
        super().__init__()
        sizes = down_sizes(size)
        chans = list(channels)[-len(sizes):] if len(channels) >= len(sizes) else list(channels) + [channels[-1]] * (len(sizes) - len(channels))
        layers: list[nn.Module] = []
        c_in = in_channels
        for c in chans:
            layers += [nn.Conv2d(c_in, c, 4, 2, 1), norm_layer(norm, c), activation()]
            c_in = c
        self.conv = nn.Sequential(*layers)
        self.flat = c_in * sizes[-1] ** 2
        head: list[nn.Module] = [nn.Flatten()]
        if hidden:
            head += [nn.Linear(self.flat, hidden), activation(), nn.Linear(hidden, out_dim)]
        else:
            head += [nn.Linear(self.flat, out_dim)]
        self.head = nn.Sequential(*head)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.conv(x))


class ConvDecoder(nn.Module):
    """Mirror of :class:`ConvEncoder`: FC layers to a ≤7-px map, k4 s2 p1 transposed convs up."""

    def __init__(
        self,
        in_dim: int,
        out_channels: int,
        size: int,
        channels: Sequence[int] = (64, 64, 32, 32),
        hidden: int = 256,
        norm: str | None = None,
        activation: type[nn.Module] = nn.ReLU,
    ) -> None:
        super().__init__()
        sizes = down_sizes(size)
        n = len(sizes)
        chans = list(channels)[:n] if len(channels) >= n else list(channels) + [channels[-1]] * (n - len(channels))
        self.start = (chans[0], sizes[-1], sizes[-1])
        flat = int(math.prod(self.start))
        fc: list[nn.Module] = []
        if hidden:
            fc += [nn.Linear(in_dim, hidden), activation(), nn.Linear(hidden, flat), activation()]
        else:
            fc += [nn.Linear(in_dim, flat), activation()]
        self.fc = nn.Sequential(*fc)
        layers: list[nn.Module] = []
        for i, c in enumerate(chans):
            last = i == n - 1
            c_out = out_channels if last else chans[i + 1]
            layers.append(nn.ConvTranspose2d(c, c_out, 4, 2, 1))
            if not last:
                layers += [norm_layer(norm, c_out), activation()]
        self.deconv = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """Returns logits / pre-activation images; the model chooses the output non-linearity."""
        return self.deconv(self.fc(z).view(-1, *self.start))
