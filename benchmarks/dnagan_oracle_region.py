"""Where does a DNA-GAN child lose identity: inside the region the attribute really changes, or
outside it? (issue 18; a diagnostic, not an editor: it reads the true counterfactual.)

    python benchmarks/dnagan_oracle_region.py runs/bench-dnagan-skip2/residual-children-cls-l1w-noise-skip2

For the same 500 test pairs per attribute as ``pair_swap`` (``bred_pairs``, seed 0), each child (B2 = B given A's
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
import torch.nn.functional as F

import factorkit as fk
from factorkit.metrics.classifier import evaluation_classifier
from factorkit.metrics.editing import bred_pairs


def score(judge, k: int, keep: list[int], value: int, img, r_in, r_cf) -> dict:
    """The judge's success on ``img`` and its identity against the input's and the truth's readings."""
    hit = judge.probabilities(img)[:, k] > 0.5
    success = hit if value == 1 else ~hit
    r_img = judge.read(img)[:, keep]
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
        pairs = bred_pairs(model, test, attribute, max_pairs=args.pairs, seed=0)  # pair_swap's pairs
        k, name, n = pairs["k"], pairs["name"], pairs["n"]
        keep = [j for j, f in enumerate(names) if f != name]
        for label, child, x, rows, value in (("add", pairs["B2"], pairs["xb"], pairs["rb"], 1),
                                             ("remove", pairs["A2"], pairs["xa"], pairs["ra"], 0)):
            cf = test.counterfactual(rows, name, np.full(n, value, dtype=np.int64))
            region = ((cf - x).abs().amax(1, keepdim=True) > args.tau).float()
            if args.grow:
                region = F.max_pool2d(region, 2 * args.grow + 1, stride=1, padding=args.grow)
            r_in, r_cf = (judge.read(t)[:, keep] for t in (x, cf))
            cells = {"region": float(region.mean())}
            for key, img in (("child", child), ("inside", x + region * (child - x)),
                             ("outside", x + (1 - region) * (child - x)), ("truth", cf)):
                cells[key] = score(judge, k, keep, value, img, r_in, r_cf)
            result[f"{attribute}.{label}"] = cells
            c, i, o = cells["child"], cells["inside"], cells["outside"]
            print(f"| {attribute} | {label} | {cells['region']:.3f} | {c['success']:.3f} / {c['identity']:.3f} | "
                  f"{i['success']:.3f} / {i['identity']:.3f} | {o['success']:.3f} / {o['identity']:.3f} | "
                  f"{cells['truth']['identity']:.3f} |")
    out = Path(args.out) if args.out else Path(args.run) / "oracle_region.json"
    out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
