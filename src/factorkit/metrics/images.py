"""Image metrics per image on [0, 1], reported as mean ± std over images (methods.md §6.6).

``mse`` (mean over pixels), ``rmse`` = √mse, ``psnr`` = 20·log10(1/rmse), ``ssim`` (Gaussian
window 11, σ 1.5, per channel then averaged; torchmetrics) and ``ms-ssim`` with the scales that
fit the image: for 64×64, 3 scales with a 7×7 window and Wang et al.'s first three weights
renormalised (methods.md §5.2); for ≥ 176 px the standard 5 scales, 11×11 window.
"""

from __future__ import annotations

import torch
from torchmetrics.functional.image import (multiscale_structural_similarity_index_measure,
                                           structural_similarity_index_measure)

Tensor = torch.Tensor
WANG_BETAS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def ms_ssim_setup(size: int) -> tuple[int, tuple[float, ...]]:
    """(window, betas) for MS-SSIM on ``size``-pixel images: as many scales as keep the
    coarsest image at least as large as the window."""
    for scales, window in ((5, 11), (4, 11), (3, 7), (2, 7), (1, 7)):
        if size / 2 ** (scales - 1) >= window and size // 2 ** (scales - 1) > (window - 1) // 2:
            betas = WANG_BETAS[:scales]
            total = sum(betas)
            return window, tuple(b / total for b in betas)
    return 3, (1.0,)


def ms_ssim(x: Tensor, y: Tensor, reduction: str = "none") -> Tensor:
    """Per-image MS-SSIM on [0, 1] images (differentiable; used as a loss by mddAE)."""
    window, betas = ms_ssim_setup(min(x.shape[-2:]))
    return multiscale_structural_similarity_index_measure(
        x, y, data_range=1.0, kernel_size=window, betas=betas, normalize="relu", reduction=reduction)


def ssim(x: Tensor, y: Tensor) -> Tensor:
    return structural_similarity_index_measure(x, y, data_range=1.0, kernel_size=11, sigma=1.5, reduction="none")


def per_image(x: Tensor, y: Tensor) -> dict[str, Tensor]:
    """Per-image scores of reconstructions ``y`` against targets ``x`` (both (N,C,H,W) in [0,1])."""
    x, y = x.float().clamp(0, 1), y.float().clamp(0, 1)
    mse = ((x - y) ** 2).flatten(1).mean(1)
    rmse = mse.sqrt()
    psnr = 20 * torch.log10(1.0 / rmse.clamp(min=1e-10))
    return {"mse": mse, "rmse": rmse, "psnr": psnr, "ssim": ssim(y, x), "ms-ssim": ms_ssim(y, x)}


IMAGE_METRICS = ("mse", "rmse", "psnr", "ssim", "ms-ssim")


def summarize(values: dict[str, Tensor]) -> dict[str, float]:
    out = {}
    for k, v in values.items():
        v = v.double()
        out[k] = float(v.mean())
        out[f"{k}.std"] = float(v.std(unbiased=False)) if len(v) > 1 else 0.0
    return out
