"""Reading user images for the editors: any PNG/JPEG (or GIF/BMP/WebP/TIFF), converted to what the
model expects. The same reader serves ``factorkit edit`` (a path) and ``factorkit serve`` (uploaded
bytes, capped in bytes and pixels; decompression bombs are refused before any pixel is decoded)."""

from __future__ import annotations

import io
import warnings
from pathlib import Path

import numpy as np
import torch

from ..errors import UsageError

FORMATS = ["PNG", "JPEG", "GIF", "BMP", "WEBP", "TIFF"]  # nothing else is opened (no EPS → Ghostscript)
MAX_PIXELS = 4096 * 4096  # larger images are refused before decoding (a 20000×20000 header is a bomb)


class NotAnImage(UsageError):
    """The bytes are not an image PIL can read, or the image is truncated."""


class ImageTooLarge(UsageError):
    """The image (or its upload) is over the byte or pixel cap."""


def read_image(source: str | Path | bytes, channels: int, size: int, name: str | None = None,
               max_pixels: int = MAX_PIXELS) -> tuple[torch.Tensor, str | None]:
    """(1, C, size, size) in [0, 1] and a one-line notice when the image had to be converted
    (centre crop to a square + resize, RGB/L conversion). ``source``: a path or the file's bytes
    (``name`` labels it in messages)."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    if isinstance(source, (bytes, bytearray)):
        label = short = name or "the upload"
        fh = io.BytesIO(source)
    else:
        path = Path(source)
        if not path.is_file():
            raise UsageError(f"{path}: no such file")
        label, short, fh = name or str(path), name or path.name, path
    hint = "give a PNG or JPEG file"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(fh, formats=FORMATS) as im:
                w, h = im.size
                if w * h > max_pixels or w < 1 or h < 1:
                    raise ImageTooLarge(f"{label} is {w}x{h} pixels; the limit is {max_pixels:,} pixels "
                                        "(about 4096x4096): scale it down first")
                im.load()
                original = (im.size, im.mode)
                mode = "RGB" if channels == 3 else "L"
                converted = im.convert(mode)
                if converted.size != (size, size):
                    converted = ImageOps.fit(converted, (size, size), Image.BICUBIC)
    except ImageTooLarge:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageTooLarge(f"{label} is too large to decode ({exc}); the limit is {max_pixels:,} pixels: scale it "
                            "down first") from None
    except UnidentifiedImageError:
        raise NotAnImage(f"cannot read {label} as an image: not a format PIL knows (UnidentifiedImageError); {hint}") from None
    except (OSError, SyntaxError, ValueError) as exc:  # truncated or corrupt data
        raise NotAnImage(f"cannot read {label} as an image ({exc.__class__.__name__}: {exc}); {hint}") from None
    notice = None
    if original != ((size, size), mode):
        notice = (f"converted {short} from {original[0][0]}x{original[0][1]} {original[1]} to {size}x{size} {mode} "
                  "(centre crop + resize)")
    arr = np.asarray(converted, dtype=np.float32) / 255.0
    t = torch.from_numpy(arr.copy())
    t = t.permute(2, 0, 1) if t.dim() == 3 else t[None]
    return t[None], notice
