"""Where does a DNA-GAN child lose identity: inside the region the attribute really changes, or
outside it? (issue 18; a diagnostic, not an editor: it reads the true counterfactual.)

    python benchmarks/dnagan_oracle_region.py runs/bench-dnagan-skip2/residual-children-cls-l1w-noise-skip2

For the same 500 test pairs per attribute as ``pair_swap`` (seed 0), each child (B2 = B given A's
piece, A2 = A with the piece annihilated) is split by the truth's region R: the pixels where the
true counterfactual differs from the input by more than ``--tau`` in any channel, grown by
``--grow`` pixels (a max-pool). Three images are scored by the judge, success and identity as in
``pair_swap``:

* ``child`` — the child as the model makes it;
* ``inside`` — x + R·(child − x): the child's change kept only where the truth changes;
* ``outside`` — x + (1 − R)·(child − x): only the change the truth does not make (its success
  should fall to the input's; its identity loss is what the spill alone costs).

If ``inside`` keeps success and lifts identity to the truth's, identity is lost by spill outside
the attribute's region; if ``inside`` still loses identity, it is lost inside the region itself.
Writes ``OUT`` (default: RUN/oracle_region.json) and a markdown table on stdout.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

import factorkit as fk
from factorkit.metrics.classifier import evaluation_classifier
from factorkit.metrics.editing import _images


def score(judge, k: int, keep: list[int], value: int, x, img, cf) -> dict:
    hit = judge.probabilities(img)[:, k] > 0.5
    success = hit if value == 1 else ~hit
    r_in, r_img, r_cf = (judge.read(t)[:, keep] for t in (x, img, cf))
    return {"success": float(success.float().mean()), "identity": float((r_img == r_in).float().mean()),
            "identity_truth": float((r_img == r_cf).float().mean())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run")
    ap.add_argument("--out", default=None)
    ap.add_argument("--pairs", type=int, default=500)
    ap.add_argument("--tau", type=float, default=0.02, help="a pixel is in R where |truth − input| > tau")
    ap.add_argument("--grow", type=int, default=1, help="pixels R is grown by")
    args = ap.parse_args()
    model = fk.load(args.run)
    test, train = fk.data.load("faces", "test"), fk.data.load("faces", "train")
    judge, _ = evaluation_classifier(train, test)
    info = test.info
    names = [f.name for f in info.factors]
    result: dict = {"run": args.run, "tau": args.tau, "grow": args.grow}
    print("| attribute | direction | R (share of pixels) | child: success / identity | inside R | outside R | truth's identity |")
    print("|---|---|---|---|---|---|---|")
    for attribute in model.edit_attributes():
        k = info.attribute_index(attribute)
        keep = [j for j, f in enumerate(names) if f != info.attributes[k]]
        attrs = test.attribute_array()[:, k] > 0.5
        rng = np.random.default_rng(0)  # pair_swap's draw
        pos, neg = np.flatnonzero(attrs), np.flatnonzero(~attrs)
        n = min(len(pos), len(neg), args.pairs)
        ra, rb = np.sort(rng.choice(pos, n, replace=False)), rng.choice(neg, n, replace=False)
        xa, xb = _images(test, ra), _images(test, rb)
        kids: dict[str, list] = {"A2": [], "B2": []}
        with torch.no_grad():
            for i in range(0, n, 256):
                out = model.crossbreed(xa[i:i + 256], xb[i:i + 256], info.attributes[k])
                for key in kids:
                    kids[key].append(out[key].cpu())
        children = {key: torch.cat(v).clamp(0, 1) for key, v in kids.items()}
        for label, child, x, rows, value in (("add", children["B2"], xb, rb, 1), ("remove", children["A2"], xa, ra, 0)):
            cf = test.counterfactual(rows, info.attributes[k], np.full(n, value, dtype=np.int64))
            region = ((cf - x).abs().amax(1, keepdim=True) > args.tau).float()
            if args.grow:
                region = F.max_pool2d(region, 2 * args.grow + 1, stride=1, padding=args.grow)
            cells = {"region": float(region.mean()),
                     "child": score(judge, k, keep, value, x, child, cf),
                     "inside": score(judge, k, keep, value, x, x + region * (child - x), cf),
                     "outside": score(judge, k, keep, value, x, x + (1 - region) * (child - x), cf),
                     "truth": score(judge, k, keep, value, x, cf, cf)}
            result[f"{attribute}.{label}"] = cells
            c, i, o = cells["child"], cells["inside"], cells["outside"]
            print(f"| {attribute} | {label} | {cells['region']:.3f} | {c['success']:.3f} / {c['identity']:.3f} | "
                  f"{i['success']:.3f} / {i['identity']:.3f} | {o['success']:.3f} / {o['identity']:.3f} | "
                  f"{cells['truth']['identity']:.3f} |")
    out = Path(args.out) if args.out else Path(args.run) / "oracle_region.json"
    out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
