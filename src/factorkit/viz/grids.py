"""Image grids as tensors and PNGs. Every grid maker returns an image; saving is separate."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..files import atomic_write_bytes

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
    path = Path(path)
    atomic_write_bytes(path, png_bytes(image, scale))
    return path


# --- model grids: each returns a (3, H, W) image ----------------------------------------------------


@torch.no_grad()
def reconstruction_grid(model, images: Tensor) -> Tensor:
    """Row 1: inputs; row 2: reconstructions."""
    return image_rows([images, model.reconstruct(images)])


@torch.no_grad()
def edit_grid(model, images: Tensor, attribute: str, values) -> Tensor:
    """Rows = images; column 0 = input, column 1 = reconstruction, then one column per value."""
    cols = [images, model.reconstruct(images)] + [model.edit(images, attribute=attribute, value=float(v)) for v in values]
    return grid(torch.stack([c.cpu() for c in cols], 1))


@torch.no_grad()
def flip_grid(model, images: Tensor, attributes) -> Tensor:
    """Rows = images; columns = input, reconstruction, then for each attribute the edit to 0 and to 1
    (the two modes of a binary attribute, IFcVAE-GAN §3.3)."""
    cols = [images, model.reconstruct(images)]
    for a in attributes:
        cols += [model.edit(images, attribute=a, value=0.0), model.edit(images, attribute=a, value=1.0)]
    return grid(torch.stack([c.cpu() for c in cols], 1))


@torch.no_grad()
def traversal_grid(model, images: Tensor, dim: int, values) -> Tensor:
    """Rows = images; columns = code dimension ``dim`` set to each value."""
    return grid(model.traverse(images, dim, values).cpu())


@torch.no_grad()
def swap_grid(model, images_a: Tensor, images_b: Tensor, chunks) -> Tensor:
    """Row 0 / column 0 show b / a; cell (i, j) = chunks of a_i with the rest from b_j."""
    n, m = len(images_a), len(images_b)
    blank = torch.ones_like(images_a[:1])
    rows = [torch.cat([blank, images_b])]
    for i in range(n):
        swapped = model.swap(images_a[i : i + 1].expand(m, *images_a.shape[1:]), images_b, chunks=chunks)
        rows.append(torch.cat([images_a[i : i + 1], swapped.cpu()]))
    return grid(torch.stack(rows))


@torch.no_grad()
def counterfactual_grid(model, dataset, indices, attribute: str) -> Tensor:
    """Per row: input, reconstruction, the model's edit (attribute flipped), the true
    counterfactual render, and |edit − counterfactual| (×3, for visibility)."""
    import numpy as np

    idx = np.asarray(indices)
    x = dataset.images_at(idx)
    k = dataset.info.attribute_index(attribute)
    target = 1 - dataset.attribute_array()[idx, k]
    edited = model.edit(x, attribute=attribute, value=torch.as_tensor(target, dtype=torch.float32)).cpu()
    cf = dataset.counterfactual(idx, attribute, target.astype(np.int64))
    diff = ((edited - cf).abs() * 3).clamp(0, 1)
    return grid(torch.stack([x, model.reconstruct(x).cpu(), edited, cf, diff], 1))


@torch.no_grad()
def pair_swap_grid(model, images_a: Tensor, images_b: Tensor, attributes) -> Tensor:
    """DNA-GAN's Fig. 5 (the code's ``swap_attribute``): per row a pair — A, B, then B2 (B given A's
    pieces for ``attributes``) and A2 (A with them annihilated, or given B's under ``annihilate=false``)."""
    kids = model.crossbreed(images_a, images_b, list(attributes))
    return grid(torch.stack([images_a.cpu(), images_b.cpu(), kids["B2"].cpu(), kids["A2"].cpu()], 1))


@torch.no_grad()
def crossbreed_grid(model, dataset, rows_a, rows_b, attribute: str) -> Tensor:
    """Per row: A, A2 (attribute removed), A's true counterfactual without it, B, B2 (A's piece
    swapped in), B's true counterfactual with it."""
    import numpy as np

    xa, xb = dataset.images_at(np.asarray(rows_a)), dataset.images_at(np.asarray(rows_b))
    kids = model.crossbreed(xa.to(model.device), xb.to(model.device), attribute)
    cf_a = dataset.counterfactual(np.asarray(rows_a), attribute, np.zeros(len(rows_a), dtype=np.int64))
    cf_b = dataset.counterfactual(np.asarray(rows_b), attribute, np.ones(len(rows_b), dtype=np.int64))
    return grid(torch.stack([xa, kids["A2"].cpu(), cf_a, xb, kids["B2"].cpu(), cf_b], 1))


@torch.no_grad()
def interpolation_grid(model, image: Tensor, ref_i: Tensor, ref_j: Tensor, attr_i: str, attr_j: str, steps: int = 5) -> Tensor:
    """DNA-GAN's Fig. 4: row 0 shows ``image``, ``ref_i`` and ``ref_j``; below, cell (r, c) is
    ``image`` with piece i := λ_r·a_i + (1 − λ_r)·b_i (a_i from ``ref_i``) and piece j likewise with
    λ_c (from ``ref_j``), λ from 0 (top, left) to 1 (bottom, right)."""
    if steps < 3:
        raise ValueError("interpolation_grid needs at least 3 steps")
    lams = torch.linspace(0, 1, steps).tolist()
    blank = torch.ones_like(image[:1]).cpu()
    rows = [torch.cat([image[:1].cpu(), ref_i[:1].cpu(), ref_j[:1].cpu()] + [blank] * (steps - 3))]
    for li in lams:
        rows.append(torch.cat([model.interpolate(image[:1], {attr_i: ref_i[:1], attr_j: ref_j[:1]},
                                                 {attr_i: li, attr_j: lj}).cpu() for lj in lams]))
    return grid(torch.stack(rows))
