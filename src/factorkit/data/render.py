"""Vectorised 2-D rendering with signed distance functions (SDFs).

Every primitive returns the signed distance in pixels (negative inside) for a whole batch at once:
coordinates are ``(1, H, W)`` grids and shape parameters ``(B, 1, 1)`` tensors. Anti-aliasing
comes from the distance itself: a pixel's coverage is ``clamp(0.5 - d, 0, 1)``, i.e. the
fraction of a one-pixel-wide box filter that lies inside the edge.
"""

from __future__ import annotations

import math

import torch

Tensor = torch.Tensor


CHUNK = 128  # images per vectorised pass: larger batches spend their time allocating memory


def chunked(fn, rows, *args, **kwargs) -> Tensor:
    """Apply a batch renderer ``fn`` to ``rows`` in chunks of :data:`CHUNK` and concatenate."""
    n = len(rows)
    if n <= CHUNK:
        return fn(rows, *args, **kwargs)
    return torch.cat([fn(rows[i : i + CHUNK], *args, **kwargs) for i in range(0, n, CHUNK)])


def pixel_grid(size: int, device: torch.device | str = "cpu") -> tuple[Tensor, Tensor]:
    """Pixel-centre coordinates ``(x, y)``, each ``(1, size, size)``; y grows downwards."""
    c = torch.arange(size, dtype=torch.float32, device=device) + 0.5
    y, x = torch.meshgrid(c, c, indexing="ij")
    return x[None], y[None]


def col(v: Tensor | float) -> Tensor:
    """Reshape a per-image parameter (B,) to (B,1,1) for broadcasting against grids."""
    if not torch.is_tensor(v):
        return torch.tensor(float(v)).view(1, 1, 1)
    return v.reshape(-1, 1, 1).float()


def coverage(d: Tensor) -> Tensor:
    return (0.5 - d).clamp_(0.0, 1.0)


def rotate(x: Tensor, y: Tensor, cx: Tensor, cy: Tensor, angle: Tensor) -> tuple[Tensor, Tensor]:
    """Coordinates relative to (cx, cy) in a frame rotated by ``angle`` (radians, anticlockwise
    on screen)."""
    dx, dy = x - cx, y - cy
    c, s = torch.cos(angle), torch.sin(angle)
    return c * dx - s * dy, s * dx + c * dy


def ellipse(x: Tensor, y: Tensor, cx, cy, rx, ry) -> Tensor:
    """Approximate SDF of an axis-aligned ellipse: f/|grad f|, exact on the boundary."""
    dx, dy = (x - cx) / rx, (y - cy) / ry
    f = dx * dx + dy * dy - 1.0
    grad = 2.0 * torch.sqrt((dx / rx) ** 2 + (dy / ry) ** 2) + 1e-6
    return f / grad


def ellipse_local(u: Tensor, v: Tensor, rx, ry) -> Tensor:
    return ellipse(u, v, 0.0, 0.0, rx, ry)


def box_local(u: Tensor, v: Tensor, hw, hh) -> Tensor:
    """Exact SDF of a box with half sizes (hw, hh) centred at the origin of (u, v)."""
    qx, qy = u.abs() - hw, v.abs() - hh
    outside = torch.sqrt(qx.clamp(min=0) ** 2 + qy.clamp(min=0) ** 2)
    inside = torch.maximum(qx, qy).clamp(max=0)
    return outside + inside


def box(x: Tensor, y: Tensor, cx, cy, hw, hh) -> Tensor:
    return box_local(x - cx, y - cy, hw, hh)


def heart_local(u: Tensor, v: Tensor, r) -> Tensor:
    """Exact SDF of a heart of half-height ``r`` centred at the origin, lobes up (−v).

    Unit heart (tip at (0,0), lobes towards +Y, height ≈ 1.1) is the union of a circle of
    radius √2/4 at (±0.25, 0.75) and the triangle below it; distances are scaled to pixels.
    """
    s = 1.1 / (2.0 * r)  # pixels -> unit heart
    px = u.abs() * s
    py = (-v) * s + 0.55  # image y down -> heart Y up, centred
    lobe = torch.sqrt((px - 0.25) ** 2 + (py - 0.75) ** 2) - math.sqrt(2.0) / 4.0
    t = 0.5 * (px + py).clamp(min=0.0)
    d_top = (px - 0.0) ** 2 + (py - 1.0) ** 2
    d_diag = (px - t) ** 2 + (py - t) ** 2
    lower = torch.sqrt(torch.minimum(d_top, d_diag)) * torch.sign(px - py)
    d = torch.where(py + px > 1.0, lobe, lower)
    return d / s


def capsule(x: Tensor, y: Tensor, ax, ay, bx, by, radius) -> Tensor:
    """SDF of the segment a–b thickened by ``radius``."""
    pax, pay = x - ax, y - ay
    bax, bay = bx - ax, by - ay
    h = ((pax * bax + pay * bay) / (bax * bax + bay * bay + 1e-9)).clamp(0.0, 1.0)
    return torch.sqrt((pax - bax * h) ** 2 + (pay - bay * h) ** 2) - radius


def parabola_arc(x: Tensor, y: Tensor, cx, cy, half_width, bend, thickness) -> Tensor:
    """A stroke along ``y = cy + bend·((x−cx)/half_width)²`` for |x−cx| ≤ half_width.

    ``bend`` < 0 curves the ends upwards (a smile, since y grows downwards).
    """
    t = (x - cx) / half_width
    curve = cy + bend * t * t
    slope = 2.0 * bend * t / half_width
    d_curve = (y - curve).abs() / torch.sqrt(1.0 + slope * slope) - thickness
    d_ends = (x - cx).abs() - half_width
    return torch.maximum(d_curve, d_ends)


def ring(x: Tensor, y: Tensor, cx, cy, radius, thickness) -> Tensor:
    return (torch.sqrt((x - cx) ** 2 + (y - cy) ** 2) - radius).abs() - thickness


def union(*ds: Tensor) -> Tensor:
    out = ds[0]
    for d in ds[1:]:
        out = torch.minimum(out, d)
    return out


def intersect(*ds: Tensor) -> Tensor:
    out = ds[0]
    for d in ds[1:]:
        out = torch.maximum(out, d)
    return out


def over(image: Tensor, colour: Tensor, alpha: Tensor) -> Tensor:
    """Alpha-composite ``colour`` ((B,C) or (C,)) onto ``image`` (B,C,H,W) with ``alpha`` (B,H,W),
    in place (one fused ``lerp_``: image += alpha·(colour − image)); returns ``image``."""
    if colour.dim() == 1:
        colour = colour[None]
    return image.lerp_(colour[:, :, None, None].expand_as(image), alpha[:, None].expand_as(image))
