"""Grid PNGs of the procedural datasets, for looking at: 64 faces, 64 shapes2d images, and faces
next to their true counterfactual renders (one column per attribute flipped).

    python benchmarks/dataset_grids.py --out docs/images
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

import factorkit as fk
from factorkit.viz.grids import grid, save_png, square_grid


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="docs/images")
    args = ap.parse_args()
    out = Path(args.out)
    faces = fk.data.load("faces", "test")
    shapes = fk.data.load("shapes2d", "test")
    rng = np.random.default_rng(0)
    save_png(square_grid(faces.images_at(rng.choice(len(faces), 64, replace=False)), 8), out / "faces_64.png", 2)
    save_png(square_grid(shapes.images_at(rng.choice(len(shapes), 64, replace=False)), 8), out / "shapes2d_64.png", 2)
    # counterfactual pairs: column 0 = the face, column k = attribute k flipped, all else equal
    idx = rng.choice(len(faces), 6, replace=False)
    rows = []
    for i in idx:
        a = faces.attribute_array()[i]
        flips = [faces.counterfactual(int(i), k, 1 - int(a[k])) for k in range(len(faces.info.attributes))]
        rows.append(torch.stack([faces.images_at([i])[0], *flips]))
    save_png(grid(torch.stack(rows)), out / "faces_counterfactuals.png", 2)
    print("columns:", ["original"] + [f"flip {a}" for a in faces.info.attributes])
    print("wrote", *(str(out / n) for n in ("faces_64.png", "shapes2d_64.png", "faces_counterfactuals.png")))


if __name__ == "__main__":
    main()
