"""Image metrics per image on [0, 1], reported as mean ± std over images (methods.md §6.6).

``mse`` (mean over pixels), ``rmse`` = √mse, ``psnr`` = 20·log10(1/rmse), ``ssim`` (Gaussian
window 11, σ 1.5, per channel then averaged; torchmetrics) and ``ms-ssim`` (Wang et al. 2003)
with the scales that fit the image: for 64×64, 3 scales with a 7-tap Gaussian window (σ 1.5)
and Wang et al.'s first three weights renormalised (methods.md §5.2); from 176 px on, the
standard 5 scales and 11 taps.

MS-SSIM itself lives in ``nn/similarity.py`` (it is also mddAE's training loss).
"""

from __future__ import annotations

import torch
from torchmetrics.functional.image import structural_similarity_index_measure

from ..nn.similarity import WANG_BETAS, ms_ssim, ms_ssim_setup, ssim_and_cs

__all__ = ["IMAGE_METRICS", "WANG_BETAS", "ms_ssim", "ms_ssim_setup", "per_image", "psnr", "ssim", "ssim_and_cs", "summarize"]

Tensor = torch.Tensor


def ssim(x: Tensor, y: Tensor) -> Tensor:
    return structural_similarity_index_measure(x, y, data_range=1.0, kernel_size=11, sigma=1.5, reduction="none")


def per_image(x: Tensor, y: Tensor) -> dict[str, Tensor]:
    """Per-image scores of reconstructions ``y`` against targets ``x`` (both (N,C,H,W) in [0,1])."""
    x, y = x.float().clamp(0, 1), y.float().clamp(0, 1)
    mse = ((x - y) ** 2).flatten(1).mean(1)
    rmse = mse.sqrt()
    return {"mse": mse, "rmse": rmse, "psnr": _psnr(rmse), "ssim": ssim(y, x), "ms-ssim": ms_ssim(y, x)}


def _psnr(rmse: Tensor) -> Tensor:
    return 20 * torch.log10(1.0 / rmse.clamp(min=1e-10))


def psnr(x: Tensor, y: Tensor) -> Tensor:
    """Per-image PSNR in dB of ``y`` against ``x`` (both clamped to [0, 1]): 20·log10(1/rmse)."""
    return _psnr(((x.float().clamp(0, 1) - y.float().clamp(0, 1)) ** 2).flatten(1).mean(1).sqrt())


IMAGE_METRICS = ("mse", "rmse", "psnr", "ssim", "ms-ssim")


def summarize(values: dict[str, Tensor]) -> dict[str, float]:
    out = {}
    for k, v in values.items():
        v = v.double()
        out[k] = float(v.mean())
        out[f"{k}.std"] = float(v.std(unbiased=False)) if len(v) > 1 else 0.0
    return out
