"""The ceiling of identity-retention on faces: what the judge reports for edits that are perfect.

    python benchmarks/identity_ceiling.py --faces 1000

identity-retention (issue 16) is the share of the 13 *other* factors that the judge reads the same
on an edit as on the input. Its bar is 0.95. This script scores editors whose output is known:

- ``truth``: the true counterfactual render (the attribute flipped, every other factor and the
  nuisance unchanged) — the best any editor can do, so the metric's ceiling per attribute;
- ``input``: the input itself (identity 1 by construction) and the input blurred by a Gaussian of
  σ = 0.5, 1 and 1.5 pixels, or with Gaussian noise of std 0.02 / 0.05 — how much of the metric a
  reconstruction loses to blur or noise alone, with no change of who the face is;
- per factor, which of the 13 the judge stops agreeing on first;
- the PSNR of the unedited input against each true counterfactual: what an editor that changes
  nothing scores on the counterfactual metric (the null a residual edit must beat).

No training; the cached faces judge (trained on first use). Prints a markdown table.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

import factorkit as fk
from factorkit.metrics.classifier import evaluation_classifier
from factorkit.metrics.images import psnr
from factorkit.nn.similarity import gaussian_blur as blur


@torch.no_grad()
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--faces", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    train, test = fk.data.load("faces", split="train"), fk.data.load("faces", split="test")
    judge, report = evaluation_classifier(train, test)
    judge.eval()
    info = test.info
    names = [f.name for f in info.factors]
    rows = np.sort(np.random.default_rng(args.seed).choice(len(test), min(args.faces, len(test)), replace=False))
    x = test.images_at(rows)
    attrs = test.attribute_array()[rows]
    read_in = judge.read(x)

    def agreement(y: torch.Tensor, skip: str | None) -> tuple[float, dict]:
        keep = [j for j, n in enumerate(names) if n != skip]
        same = (judge.read(y.clamp(0, 1))[:, keep] == read_in[:, keep]).float()
        return float(same.mean()), {names[j]: float(same[:, i].mean()) for i, j in enumerate(keep)}

    print(f"{len(rows)} test faces; judge factor accuracy: "
          + ", ".join(f"{k} {v:.3f}" for k, v in report["factor_accuracy"].items()))
    print("\n| editor | identity-retention (13 other factors) | lowest factors |\n|---|---|---|")
    for a, name in enumerate(info.attributes):
        flipped = test.counterfactual(rows, name, (1 - attrs[:, a]).astype(np.int64))
        mean, per = agreement(flipped, name)
        p = judge.probabilities(flipped)[:, a].numpy() > 0.5
        ok = float((p == (1 - attrs[:, a] > 0.5)).mean())
        low = sorted(per.items(), key=lambda kv: kv[1])[:3]
        null = float(psnr(flipped, x).mean())
        print(f"| truth, {name} flipped (judge reads the flip: {ok:.3f}; the unedited input's PSNR against it: "
              f"{null:.2f} dB) | {mean:.3f} | " + ", ".join(f"{k} {v:.3f}" for k, v in low) + " |")
    for label, y in [("input blurred, σ = 0.5 px", blur(x, 0.5)), ("input blurred, σ = 1 px", blur(x, 1.0)),
                     ("input blurred, σ = 1.5 px", blur(x, 1.5)),
                     ("input + noise, std 0.02", x + 0.02 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))),
                     ("input + noise, std 0.05", x + 0.05 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1)))]:
        mean, per = agreement(y, None)
        db = float(psnr(x, y).mean())
        low = sorted(per.items(), key=lambda kv: kv[1])[:3]
        print(f"| {label} (PSNR {db:.1f} dB) | {mean:.3f} (all 14) | " + ", ".join(f"{k} {v:.3f}" for k, v in low) + " |")


if __name__ == "__main__":
    main()
