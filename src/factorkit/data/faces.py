"""faces: procedural 64×64 RGB faces with identity factors, CelebA-named binary attributes,
nuisance variation and true counterfactual renders.

* Identity factors (discrete): face shape (4), skin tone (5), hair colour (5), hair style (3),
  eye shape (3), nose (3), mouth width (3) → 8,100 identities.
* Binary attributes, named as in CelebA, with realistic (non-50 %) prevalences: Smiling 48 %,
  Mouth_Slightly_Open (copies Smiling with probability ``correlation``, else 45 %), Eyeglasses
  14 %, Bangs 18 %, Wearing_Hat 10 %, Mustache 10 %, Pale_Skin 8 %. With the default
  ``correlation=0.5`` the pair Smiling/Mouth_Slightly_Open has a Pearson correlation ≈ 0.5.
* Nuisance (continuous, not a factor): head position jitter (±2.5 px), light gain (0.85–1.15),
  light direction and strength, background tint — so no factor is a fixed pixel lookup.

Every sample is rendered from ``(seed, index)``. Train/test are split **by identity**: a fixed
10 % of the 8,100 identities never appear in the training split. ``counterfactual(index,
attribute, value)`` renders the same face with one attribute changed and every other factor,
nuisance included, identical.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np
import torch

from . import render as R
from .base import DatasetInfo, Factor, FactorDataset, check_split
from .cache import rendered_images, source_fingerprint

SIZE = 64

FACE_SHAPES = {"round": (15.5, 16.5), "oval": (14.0, 18.0), "long": (12.5, 19.5), "wide": (17.5, 16.0)}
SKIN_TONES = {
    "porcelain": (0.96, 0.82, 0.72),
    "light": (0.91, 0.73, 0.60),
    "medium": (0.80, 0.60, 0.45),
    "tan": (0.64, 0.45, 0.32),
    "deep": (0.45, 0.31, 0.22),
}
HAIR_COLOURS = {
    "black": (0.10, 0.08, 0.07),
    "brown": (0.42, 0.26, 0.13),
    "blond": (0.90, 0.78, 0.45),
    "red": (0.72, 0.30, 0.12),
    "gray": (0.72, 0.72, 0.72),
}
HAIR_STYLES = ("short", "long", "bun")
EYE_SHAPES = {"round": (2.6, 2.6), "narrow": (3.6, 1.4), "wide": (4.2, 2.4)}
NOSES = {"small": (1.7, 1.5, 0.0), "long": (1.4, 3.6, -1.0), "wide": (3.1, 1.6, 0.0)}
MOUTH_WIDTHS = {"narrow": 4.5, "medium": 6.5, "wide": 8.5}

IDENTITY = (
    Factor("face_shape", 4, tuple(FACE_SHAPES)),
    Factor("skin_tone", 5, tuple(SKIN_TONES)),
    Factor("hair_colour", 5, tuple(HAIR_COLOURS)),
    Factor("hair_style", 3, HAIR_STYLES),
    Factor("eye_shape", 3, tuple(EYE_SHAPES)),
    Factor("nose", 3, tuple(NOSES)),
    Factor("mouth_width", 3, tuple(MOUTH_WIDTHS)),
)
ATTRIBUTES = (
    "Smiling",
    "Mouth_Slightly_Open",
    "Eyeglasses",
    "Bangs",
    "Wearing_Hat",
    "Mustache",
    "Pale_Skin",
)
PREVALENCE = np.array([0.48, 0.45, 0.14, 0.18, 0.10, 0.10, 0.08])
NUISANCE = ("dx", "dy", "gain", "light_angle", "light_strength", "background")
ID_SIZES = np.array([f.size for f in IDENTITY])
NUM_IDENTITIES = int(np.prod(ID_SIZES))
(SMILING, OPEN, GLASSES, BANGS, HAT, MUSTACHE, PALE) = range(len(ATTRIBUTES))

INFO = DatasetInfo(
    name="faces",
    image_shape=(3, SIZE, SIZE),
    factors=IDENTITY + tuple(Factor(a, 2, (0, 1)) for a in ATTRIBUTES),
    attributes=ATTRIBUTES,
    procedural=True,
    has_generator=True,
    has_counterfactual=True,
    description="procedural 64x64 RGB faces: 7 identity factors, 7 CelebA-named attributes, "
    "nuisance, counterfactual renders; split by identity",
    paper_use="stand-in for CelebA in every editing experiment (true counterfactuals)",
)


@dataclass
class Options:
    seed: int = 0  # seeds attributes, nuisance and the identity split
    size: int = 50000  # samples in train + test together
    correlation: float = 0.5  # P(Mouth_Slightly_Open copies Smiling); 0 = independent
    test_fraction: float = 0.1  # fraction of identities held out


def _table(d: dict) -> torch.Tensor:
    return torch.tensor(list(d.values()), dtype=torch.float32)


_FACE = _table(FACE_SHAPES)
_SKIN = _table(SKIN_TONES)
_HAIR = _table(HAIR_COLOURS)
_EYES = _table(EYE_SHAPES)
_NOSE = _table(NOSES)
_MOUTH = torch.tensor(list(MOUTH_WIDTHS.values()))
_PALE = torch.tensor([0.97, 0.92, 0.88])
_HAT = torch.tensor([0.55, 0.12, 0.18])
_CLOTHES = torch.tensor([0.28, 0.34, 0.46])
_LIPS = torch.tensor([0.66, 0.27, 0.27])
_MOUTH_IN = torch.tensor([0.28, 0.06, 0.06])
_FRAME = torch.tensor([0.08, 0.08, 0.10])
_BG_A = torch.tensor([0.55, 0.65, 0.76])
_BG_B = torch.tensor([0.78, 0.72, 0.60])


def sample_attributes(n: int, rng: np.random.Generator, correlation: float) -> np.ndarray:
    """Binary attributes with the prevalences above; Mouth_Slightly_Open copies Smiling with
    probability ``correlation``."""
    attrs = (rng.random((n, len(ATTRIBUTES))) < PREVALENCE[None]).astype(np.int64)
    copy = rng.random(n) < correlation
    attrs[copy, OPEN] = attrs[copy, SMILING]
    return attrs


def sample_nuisance(n: int, rng: np.random.Generator) -> np.ndarray:
    u = rng.random((n, len(NUISANCE)))
    return np.stack(
        [
            (u[:, 0] - 0.5) * 5.0,  # dx in px
            (u[:, 1] - 0.5) * 5.0,  # dy in px
            0.85 + 0.30 * u[:, 2],  # light gain
            2 * np.pi * u[:, 3],  # light direction
            0.15 * u[:, 4],  # light strength (gradient amplitude)
            u[:, 5],  # background tint
        ],
        axis=1,
    ).astype(np.float32)


CANONICAL_NUISANCE = np.array([0.0, 0.0, 1.0, 0.0, 0.0, 0.5], dtype=np.float32)


def identity_index(identity: np.ndarray) -> np.ndarray:
    strides = np.concatenate([np.cumprod(ID_SIZES[::-1])[::-1][1:], [1]])
    return (np.asarray(identity, dtype=np.int64) * strides).sum(axis=1)


def render(factors: np.ndarray | torch.Tensor, nuisance: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Faces (N, 3, 64, 64) in [0, 1] from factor rows (N, 14) = identity (7) + attributes (7)
    and nuisance rows (N, 6)."""
    f = torch.as_tensor(np.asarray(factors), dtype=torch.long)
    nu = torch.as_tensor(np.asarray(nuisance), dtype=torch.float32)
    return R.chunked(_render, torch.cat([f.float(), nu], dim=1))


# every eye, brow, nose, mouth, mustache and glasses pixel lies in this window (checked in tests)
WINDOW_ROWS, WINDOW_COLS = slice(18, 52), slice(14, 50)


def _render(rows: torch.Tensor, windowed: bool = True) -> torch.Tensor:  # noqa: PLR0915 - one drawing
    n = rows.shape[0]
    f = rows[:, :14].long()
    nu = rows[:, 14:]
    a = f[:, 7:].bool()
    col = R.col
    x, y = R.pixel_grid(SIZE)

    cx = col(32.0 + nu[:, 0])
    cy = col(33.0 + nu[:, 1])
    rx = col(_FACE[f[:, 0], 0])
    ry = col(_FACE[f[:, 0], 1])
    skin = _SKIN[f[:, 1]]
    skin = torch.where(a[:, PALE, None], skin + 0.6 * (_PALE - skin), skin)
    hair = _HAIR[f[:, 2]]
    style = f[:, 3].view(-1, 1, 1)
    eye_rx, eye_ry = col(_EYES[f[:, 4], 0]), col(_EYES[f[:, 4], 1])
    nose = _NOSE[f[:, 5]]
    mouth_w = col(_MOUTH[f[:, 6]])
    on = lambda k: a[:, k].view(-1, 1, 1).float()  # noqa: E731 - attribute mask as alpha

    # background: a tint between two colours
    t = nu[:, 5:6]
    bg = _BG_A[None] + t * (_BG_B - _BG_A)[None]
    img = bg[:, :, None, None].expand(n, 3, SIZE, SIZE).clone()

    # shoulders, long hair falling behind them, neck in front
    img = R.over(img, _CLOTHES, R.coverage(R.ellipse(x, y, cx, cy + ry + 15.0, 25.0, 10.0)))
    long_hair = R.ellipse(x, y, cx, cy + 3.0, rx + 4.5, ry + 6.0)
    img = R.over(img, hair, R.coverage(long_hair) * (style == 1).float())
    img = R.over(img, skin * 0.85, R.coverage(R.box(x, y, cx, cy + ry - 1.0, rx * 0.38, 7.0)))
    # bun on top
    bun = R.ellipse(x, y, cx, cy - ry - 2.5, 6.0, 5.0)
    img = R.over(img, hair, R.coverage(bun) * (style == 2).float())
    # ears, face
    ears = R.union(R.ellipse(x, y, cx - rx, cy + 1.0, 2.6, 4.2), R.ellipse(x, y, cx + rx, cy + 1.0, 2.6, 4.2))
    img = R.over(img, skin * 0.93, R.coverage(ears))
    img = R.over(img, skin, R.coverage(R.ellipse(x, y, cx, cy, rx, ry)))

    # hair cap above the hairline, and bangs (a jagged fringe over the forehead)
    head = R.ellipse(x, y, cx, cy, rx + 1.5, ry + 1.5)
    hairline = cy - 0.45 * ry
    img = R.over(img, hair, R.coverage(R.intersect(head, y - hairline)))
    fringe = hairline + 6.5 + 1.3 * torch.sin((x - cx) * 1.2)
    img = R.over(img, hair, R.coverage(R.intersect(head, y - fringe)) * on(BANGS))

    # the small features below are drawn on a window around the face (jitter included): the
    # same pixels as the full frame, a third of the work
    full = img
    if windowed:
        img = full[:, :, WINDOW_ROWS, WINDOW_COLS]
        x, y = x[:, WINDOW_ROWS, WINDOW_COLS], y[:, WINDOW_ROWS, WINDOW_COLS]

    # eyes with pupils, eyebrows
    ey = cy - 1.5
    for side in (-1.0, 1.0):
        ex = cx + side * 6.5
        img = R.over(img, torch.tensor([0.97, 0.97, 0.97]), R.coverage(R.ellipse(x, y, ex, ey, eye_rx, eye_ry)))
        pupil_r = torch.minimum(eye_ry, torch.full_like(eye_ry, 1.7))
        img = R.over(img, torch.tensor([0.16, 0.10, 0.07]), R.coverage(R.ellipse(x, y, ex, ey, pupil_r, pupil_r)))
        brow_y = ey - eye_ry - 2.6
        brow = R.capsule(x, y, ex - 3.0, brow_y, ex + 3.0, brow_y, 0.75)
        img = R.over(img, hair * 0.7, R.coverage(brow))

    # nose
    nose_d = R.ellipse(x, y, cx, cy + 4.5 + col(nose[:, 2]), col(nose[:, 0]), col(nose[:, 1]))
    img = R.over(img, skin * 0.78, R.coverage(nose_d))

    # mouth: open = dark inner ellipse; smiling = upward curve of the lips
    my = cy + 0.55 * ry
    inner = R.ellipse(x, y, cx, my + 0.3, mouth_w * 0.62, torch.full_like(mouth_w, 2.1))
    img = R.over(img, _MOUTH_IN, R.coverage(inner) * on(OPEN))
    bend = -2.6 * on(SMILING)
    lips = R.parabola_arc(x, y, cx, my, mouth_w, bend, 0.85)
    img = R.over(img, _LIPS, R.coverage(lips))
    # mustache: a band above the upper lip
    stache = R.ellipse(x, y, cx, my - 2.9, mouth_w * 0.8, torch.full_like(mouth_w, 1.4))
    img = R.over(img, hair * 0.8, R.coverage(stache) * on(MUSTACHE))

    # eyeglasses: two rings and a bridge
    frames = R.union(
        R.ring(x, y, cx - 6.5, ey, 4.6, 0.55),
        R.ring(x, y, cx + 6.5, ey, 4.6, 0.55),
        R.capsule(x, y, cx - 1.9, ey, cx + 1.9, ey, 0.5),
    )
    img = R.over(img, _FRAME, R.coverage(frames) * on(GLASSES))

    img = full
    x, y = R.pixel_grid(SIZE)

    # hat: a rounded crown and a brim
    crown = R.intersect(R.ellipse(x, y, cx, cy - ry + 1.0, rx + 1.0, 10.0), y - (cy - ry + 3.0))
    brim = R.ellipse(x, y, cx, cy - ry + 3.0, rx + 5.5, torch.full_like(rx, 2.0))
    img = R.over(img, _HAT, R.coverage(R.union(crown, brim)) * on(HAT))

    # lighting: global gain times a directional gradient
    u = (x - SIZE / 2) / (SIZE / 2)
    v = (y - SIZE / 2) / (SIZE / 2)
    ang, strength = col(nu[:, 3]), col(nu[:, 4])
    light = col(nu[:, 2]) * (1.0 + strength * (torch.cos(ang) * u + torch.sin(ang) * v))
    return (img * light[:, None]).clamp_(0.0, 1.0)


def identity_split(seed: int, test_fraction: float) -> np.ndarray:
    """Boolean (8100,): True for held-out identities."""
    rng = np.random.Generator(np.random.Philox(seed + 7919))
    test = np.zeros(NUM_IDENTITIES, dtype=bool)
    test[rng.permutation(NUM_IDENTITIES)[: int(round(NUM_IDENTITIES * test_fraction))]] = True
    return test


class Faces(FactorDataset):
    info = INFO

    def __init__(self, split: str = "train", options: Options | None = None) -> None:
        self.options = o = options or Options()
        self.split = check_split(split)
        rng = np.random.Generator(np.random.Philox(o.seed))
        identity = np.stack([rng.integers(0, s, size=o.size) for s in ID_SIZES], axis=1)
        attrs = sample_attributes(o.size, rng, o.correlation)
        nuisance = sample_nuisance(o.size, rng)
        held_out = identity_split(o.seed, o.test_fraction)[identity_index(identity)]
        rows = {"train": ~held_out, "test": held_out, "all": np.ones(o.size, bool)}[split]
        self.rows = np.flatnonzero(rows)
        self._factors = np.concatenate([identity, attrs], axis=1)[self.rows]
        self._nuisance = nuisance[self.rows]
        self._images: np.ndarray | None = None  # uint8 (N, 3, H, W) once prerender() ran

    def prerender(self, build: bool = True) -> bool:
        """Read batches from a uint8 cache of every image of this split (``$FACTORKIT_CACHE/renders``,
        keyed by the options, the split and the renderer's source) instead of rendering them: a
        batch is then an array lookup. ``build``: render the cache if it does not exist yet (else
        use it only when it does). The images differ from live renders by uint8 rounding only
        (≤ 1/510 per pixel). Returns whether batches now come from the cache."""
        if self._images is None:
            o = self.options
            stem = f"faces-s{o.seed}-n{o.size}-c{o.correlation}-t{o.test_fraction}-{self.split}-"
            key = stem + source_fingerprint(sys.modules[__name__], R)
            to_u8 = lambda rows: (render(self._factors[rows], self._nuisance[rows]) * 255).round().to(torch.uint8).numpy()  # noqa: E731
            self._images = rendered_images(key, len(self), INFO.image_shape, to_u8, build=build,
                                           replaces=stem + "*.u8")
        return self._images is not None

    def __len__(self) -> int:
        return len(self.rows)

    def get_batch(self, indices: np.ndarray) -> dict[str, torch.Tensor]:
        factors = self._factors[indices]
        if self._images is not None:
            image = torch.from_numpy(self._images[indices]).float().div_(255)
        else:
            image = render(factors, self._nuisance[indices])
        return {
            "image": image,
            "factors": torch.from_numpy(factors),
            "attributes": torch.from_numpy(factors[:, 7:].astype(np.float32)),
            "index": torch.from_numpy(np.asarray(indices, dtype=np.int64)),
        }

    def factor_array(self) -> np.ndarray:
        return self._factors.copy()

    def attribute_array(self) -> np.ndarray:
        return self._factors[:, 7:].astype(np.float32)

    def nuisance_array(self) -> np.ndarray:
        return self._nuisance.copy()

    # --- counterfactuals -----------------------------------------------------------------
    def counterfactual(self, index, attribute: str | int, value) -> torch.Tensor:
        """The face(s) at split-local ``index`` re-rendered with ``attribute`` set to ``value``
        (0/1) and everything else, nuisance included, unchanged. A scalar index gives (3,H,W),
        an array of indices (N,3,H,W); ``value`` may be a scalar or one value per index."""
        k = attribute if isinstance(attribute, int) else self.info.attribute_index(attribute)
        idx = np.atleast_1d(np.asarray(index, dtype=np.int64))
        factors = self._factors[idx].copy()
        factors[:, 7 + k] = np.broadcast_to(np.asarray(value, dtype=np.int64), len(idx))
        out = render(factors, self._nuisance[idx])
        return out[0] if np.ndim(index) == 0 else out

    # --- ground-truth generator (for higgins / factorvae) --------------------------------
    def sample_factors(self, n: int, generator: np.random.Generator) -> np.ndarray:
        """Factor rows from the data distribution: identity uniform, attributes with their
        prevalences and correlation."""
        identity = np.stack([generator.integers(0, s, size=n) for s in ID_SIZES], axis=1)
        attrs = sample_attributes(n, generator, self.options.correlation)
        return np.concatenate([identity, attrs], axis=1)

    def images(
        self,
        factors: np.ndarray,
        generator: np.random.Generator | None = None,
        nuisance: np.ndarray | None = None,
    ) -> torch.Tensor:
        """Render factor rows; nuisance as given, else drawn from ``generator``, else canonical."""
        n = len(factors)
        if nuisance is None:
            nuisance = (
                sample_nuisance(n, generator)
                if generator is not None
                else np.repeat(CANONICAL_NUISANCE[None], n, axis=0)
            )
        return render(factors, nuisance)
