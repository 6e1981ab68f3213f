"""Guidance functions of UD-GAN-G (Yildirim et al., §4.3 and Appendices B–D; methods.md §2.4).

A guided knob's siamese network does not see the whole generated image but a differentiable
function of it, so the knob is steered towards what that function exposes. All functions take
images in [0, 1], shape (N, C, H, W), and are differentiable in them (G is trained through them).

==============  ==================================================================================
``crops``       the four horizontal bands of Fig. 2 (top, middle-upper, middle-lower, bottom): H/4
                rows each; the rest of the image is masked to 0, so one φ architecture applies
                (the band coordinates are only drawn in Fig. 2: ours)
``moments``     Appendix D, eq. 8, intensities as weights, pixel coordinates (column c_x, row c_y):
                Z = Σ x,  M̂_x = Σ c_x x / Z,  M̂_y = Σ c_y x / Z,
                Ŝ = Σ ((c_x − M̂_x)² + (c_y − M̂_y)²) x / Z
``avgcolor``    Appendix B: the average colour of some randomly sampled pixels (64, drawn once and
                kept, so the representation of an image is deterministic: ours)
``edges``       Appendix C's edge detector: the Sobel gradient magnitude of the grey image
==============  ==================================================================================
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

Tensor = torch.Tensor

GUIDANCE = ("none", "crops", "moments", "avgcolor", "edges")
#: knobs each guidance steers (the last ones of the latent; methods.md §2.4)
GUIDED_KNOBS = {"none": 0, "crops": 4, "moments": 3, "avgcolor": 1, "edges": 1}
BANDS = ("top", "middle-upper", "middle-lower", "bottom")


def band_rows(size: int, band: int) -> range:
    """The rows of band ``band`` (0 = top … 3 = bottom) of a ``size``-row image."""
    if size % 4:
        raise ValueError(f"crops need an image height divisible by 4, got {size}")
    h = size // 4
    return range(band * h, (band + 1) * h)


def crop_band(images: Tensor, band: int) -> Tensor:
    """``images`` with every row outside band ``band`` set to 0."""
    rows = band_rows(images.shape[2], band)
    mask = torch.zeros(images.shape[2], 1, device=images.device, dtype=images.dtype)
    mask[rows.start : rows.stop] = 1
    return images * mask


def moments(images: Tensor, eps: float = 1e-8) -> Tensor:
    """(N, 3): eq. 8's centre of mass (M̂_x, M̂_y) and spread Ŝ in pixels, the grey intensity as
    weights (a black image gives the grid's centre and spread through ``eps``)."""
    w = images.mean(1)  # (N, H, W) grey intensity
    n, h, wd = w.shape
    cy = torch.arange(h, device=w.device, dtype=w.dtype).view(1, h, 1)
    cx = torch.arange(wd, device=w.device, dtype=w.dtype).view(1, 1, wd)
    z = w.sum((1, 2)) + eps
    mx = (cx * w).sum((1, 2)) / z
    my = (cy * w).sum((1, 2)) / z
    s = (((cx - mx.view(n, 1, 1)) ** 2 + (cy - my.view(n, 1, 1)) ** 2) * w).sum((1, 2)) / z
    return torch.stack([mx, my, s], 1)


def average_colour(images: Tensor, pixels: Tensor) -> Tensor:
    """(N, C): the mean colour of the pixels at flat positions ``pixels`` (row × W + column)."""
    return images.flatten(2)[:, :, pixels].mean(2)


def sample_pixels(size: int, count: int, generator: torch.Generator | None = None) -> Tensor:
    """``count`` distinct flat pixel positions of a ``size`` × ``size`` image."""
    return torch.randperm(size * size, generator=generator)[:count]


_SOBEL_X = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]])


def sobel_magnitude(images: Tensor, eps: float = 1e-6) -> Tensor:
    """(N, 1, H, W): √(G_x² + G_y²) of the grey image, Sobel kernels, replicated borders. ``eps``
    keeps the root's gradient finite on flat regions."""
    grey = images.mean(1, keepdim=True)
    kx = _SOBEL_X.to(images.device, images.dtype).view(1, 1, 3, 3)
    ky = kx.transpose(2, 3)
    padded = F.pad(grey, (1, 1, 1, 1), mode="replicate")
    gx, gy = F.conv2d(padded, kx), F.conv2d(padded, ky)
    return (gx.pow(2) + gy.pow(2) + eps).sqrt()
