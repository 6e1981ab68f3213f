"""Image grids as tensors and PNGs. Every grid maker returns an image; saving is separate."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

Tensor = torch.Tensor


def _rgb(x: Tensor) -> Tensor:
    x = x.detach().float().cpu().clamp(0, 1)
    return x.expand(x.shape[0], 3, *x.shape[2:]) if x.shape[1] == 1 else x


def grid(images: Tensor, pad: int = 2, pad_value: float = 1.0) -> Tensor:
    """(R, K, C, H, W) → one (3, R·(H+pad)+pad, K·(W+pad)+pad) image: row r, column k."""
    r, k = images.shape[:2]
    flat = _rgb(images.reshape(r * k, *images.shape[2:]))
    h, w = flat.shape[-2:]
    out = torch.full((3, r * (h + pad) + pad, k * (w + pad) + pad), pad_value)
    for i in range(r):
        for j in range(k):
            y, x = pad + i * (h + pad), pad + j * (w + pad)
            out[:, y : y + h, x : x + w] = flat[i * k + j]
    return out


def image_rows(rows: list[Tensor], pad: int = 2) -> Tensor:
    """Rows of equal length (each (N, C, H, W)) stacked into one grid image."""
    n = min(r.shape[0] for r in rows)
    stacked = torch.stack([_rgb(r[:n]) for r in rows])
    return grid(stacked, pad)


def square_grid(images: Tensor, columns: int | None = None, pad: int = 2) -> Tensor:
    """(N, C, H, W) → an approximately square grid image."""
    n = images.shape[0]
    cols = columns or int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    filler = torch.ones(rows * cols - n, *images.shape[1:])
    full = torch.cat([images.detach().float().cpu(), filler])
    return grid(full.view(rows, cols, *images.shape[1:]), pad)


def to_pil(image: Tensor, scale: int = 1):
    from PIL import Image

    arr = (image.detach().cpu().clamp(0, 1).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    im = Image.fromarray(arr if arr.shape[2] == 3 else arr[..., 0])
    if scale != 1:
        im = im.resize((im.width * scale, im.height * scale), Image.NEAREST)
    return im


def png_bytes(image: Tensor, scale: int = 1) -> bytes:
    import io

    buf = io.BytesIO()
    to_pil(image, scale).save(buf, format="PNG")
    return buf.getvalue()


def save_png(image: Tensor, path: str | Path, scale: int = 1) -> Path:
    """Write a (C, H, W) image atomically as PNG."""
    from ..train.checkpoint import atomic_write_bytes

    path = Path(path)
    atomic_write_bytes(path, png_bytes(image, scale))
    return path
