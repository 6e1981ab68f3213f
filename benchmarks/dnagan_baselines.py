"""Which decode should a residual DNA-GAN child subtract? (issue 18, results §12)

For a trained ``dna-gan`` run, on test pairs per attribute (A with it, B without): B2 is built as
B + Dec(h_B with a_i) − baseline, with the baseline either B's plain decode Dec(h_B) (what
``crossbreed`` subtracted before the fix) or B1 = Dec(h_B with piece i annihilated) (what
``children=residual`` subtracts in training, and ``crossbreed`` now). Printed per attribute: the
judge's add rate under each baseline, and — for a run trained with ``lambda_cls`` — how often the
model's own classifier C reads the attribute on the plain-baseline B2, on B and on A. A second
table sets C beside the judge on the children as ``crossbreed`` returns them (B1 and A1 baselines):
how often each reads the attribute added on B2 and removed on A2 (C without ``cls_noise``'s noise).

    python benchmarks/dnagan_baselines.py runs/bench-dnagan-cls/residual-children-cls
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

import factorkit as fk
from factorkit.metrics.classifier import evaluation_classifier
from factorkit.metrics.editing import _images
from factorkit.models.base import images_to_signed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("run")
    ap.add_argument("--pairs", type=int, default=300)
    args = ap.parse_args()
    model = fk.load(args.run)
    model.config.edit_output = "decoded"  # the decodes themselves; the residual children are built here
    test, train = fk.data.load("faces", "test"), fk.data.load("faces", "train")
    judge, _ = evaluation_classifier(train, test)
    print("| attribute | judge: add, baseline Dec(h_B) | add, baseline B1 | C on B2 (Dec(h_B)) | C on B | C on A |")
    print("|---|---|---|---|---|---|")
    second = ["", "| attribute | judge: added on B2 | C: added on B2 | judge: removed on A2 | C: removed on A2 |",
              "|---|---|---|---|---|"]
    for name in model.edit_attributes():
        k, j = test.info.attribute_index(name), model.attr_names.index(name)
        on = test.attribute_array()[:, k] > 0.5
        rng = np.random.default_rng(0)
        pos, neg = np.flatnonzero(on), np.flatnonzero(~on)
        n = min(len(pos), len(neg), args.pairs)
        xa, xb = _images(test, np.sort(rng.choice(pos, n, replace=False))), _images(test, rng.choice(neg, n, replace=False))
        with torch.no_grad():
            kids = model.crossbreed(xa, xb, name)
            plain = (xb + kids["B2"] - model.reconstruct(xb)).clamp(0, 1)
            b1 = (xb + kids["B2"] - kids["B1"]).clamp(0, 1)
            a2 = (xa + kids["A2"] - kids["A1"]).clamp(0, 1)
            judge_on = {key: judge.probabilities(t)[:, k] > 0.5 for key, t in (("plain", plain), ("b1", b1), ("a2", a2))}
            rates = [float(judge_on[key].float().mean()) for key in ("plain", "b1")]
            c = ["—"] * 3
            if hasattr(model, "classifier"):
                c_on = {key: model.classifier(images_to_signed(t))[:, j] > 0  # C's reading, without cls_noise's noise
                        for key, t in (("plain", plain), ("b", xb), ("a", xa), ("b1", b1), ("a2", a2))}
                c = [f"{float(c_on[key].float().mean()):.3f}" for key in ("plain", "b", "a")]
                second.append(f"| {name} | {float(judge_on['b1'].float().mean()):.3f} | {float(c_on['b1'].float().mean()):.3f} "
                              f"| {float((~judge_on['a2']).float().mean()):.3f} | {float((~c_on['a2']).float().mean()):.3f} |")
        print(f"| {name} | {rates[0]:.3f} | {rates[1]:.3f} | {c[0]} | {c[1]} | {c[2]} |")
    if len(second) > 3:
        print("\n".join(second))


if __name__ == "__main__":
    main()
