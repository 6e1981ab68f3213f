"""Reading user images for the editor: any PNG/JPEG, converted to what the model expects."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import UsageError


def read_image(path: str | Path, channels: int, size: int) -> tuple[torch.Tensor, str | None]:
    """(1, C, size, size) in [0, 1] and a one-line notice when the file had to be converted
    (centre crop to a square + resize, RGB/L conversion)."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    try:
        with Image.open(path) as im:
            im.load()
            original = (im.size, im.mode)
            mode = "RGB" if channels == 3 else "L"
            converted = im.convert(mode)
            if converted.size != (size, size):
                converted = ImageOps.fit(converted, (size, size), Image.BICUBIC)
    except (UnidentifiedImageError, OSError) as exc:
        raise UsageError(f"cannot read {path} as an image ({exc.__class__.__name__}); give a PNG or JPEG file") from None
    notice = None
    if original != ((size, size), mode):
        notice = (f"converted {path.name} from {original[0][0]}x{original[0][1]} {original[1]} to {size}x{size} {mode} "
                  "(centre crop + resize)")
    arr = np.asarray(converted, dtype=np.float32) / 255.0
    t = torch.from_numpy(arr)
    t = t.permute(2, 0, 1) if t.dim() == 3 else t[None]
    return t[None], notice
