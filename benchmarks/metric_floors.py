"""Floor and ceiling of every ground-truth metric on shapes2d (issue 4, must-show 4).

Three representations of shapes2d, scored by every factor metric at the study's defaults:

(a) ideal codes — the true factors themselves (ceiling);
(b) random codes — 10 independent Gaussian dimensions, unrelated to the image (floor);
(c) a trained ``betavae`` (fast preset, ``--steps`` steps).

Array metrics (mig, sap, dci, modularity) use 10,000 train / 5,000 test rows; the interventional
ones (higgins, factorvae) render their own images — the defaults (10,000 + 5,000 points of 64
images ≈ 1 million renders each) are cut to ``--points`` training points and half as many for
evaluation, which is stated in the output.

    python benchmarks/metric_floors.py --steps 3000 --out runs/bench-floors
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

import factorkit as fk
from factorkit.metrics import factors as F
from factorkit.metrics.evaluate import rows as _rows

KEYS = ["mig", "sap", "dci.disentanglement", "dci.completeness", "dci.informativeness_test", "modularity",
        "explicitness_test", "higgins", "factorvae"]


class FactorsAsImages:
    """The shapes2d generator, but 'images' are the factor rows themselves (for ideal/random codes)."""

    def __init__(self, dataset) -> None:
        self.dataset = dataset
        self.info = dataset.info

    def sample_factors(self, n, generator):
        return self.dataset.sample_factors(n, generator)

    def images(self, factors, generator=None):
        return torch.as_tensor(factors, dtype=torch.float64)


def score(name: str, train_codes, train_f, test_codes, test_f, sampler, representation, points: int) -> dict:
    out, secs = {}, {}
    for metric, fn in (("mig", lambda: F.mig(train_codes, train_f)),
                       ("sap", lambda: F.sap(train_codes, train_f, test_codes, test_f)),
                       ("dci", lambda: F.dci(train_codes, train_f, test_codes, test_f)),
                       ("modularity", lambda: F.modularity(train_codes, train_f, test_codes, test_f)),
                       ("higgins", lambda: F.higgins(sampler, representation, num_train=points, num_eval=points // 2)),
                       ("factorvae", lambda: F.factorvae(sampler, representation, num_train=points, num_eval=points // 2))):
        t = time.perf_counter()
        out.update({k: v for k, v in fn().items() if not k.startswith("_")})
        secs[metric] = round(time.perf_counter() - t, 1)
        print(f"   {name} {metric}: {secs[metric]} s", flush=True)
    return {"scores": out, "seconds": secs}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--points", type=int, default=2000, help="training points of higgins/factorvae (study: 10,000)")
    p.add_argument("--out", type=Path, default=Path("runs/bench-floors"))
    p.add_argument("--reuse", action="store_true")
    a = p.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    train, test = fk.data.load("shapes2d", "train"), fk.data.load("shapes2d", "test")
    tr, te = _rows(len(train), 10000, 0), _rows(len(test), 5000, 1)
    f_tr, f_te = train.factor_array()[tr], test.factor_array()[te]
    results = {}

    # (a) ideal codes: the factors; (b) random codes
    ideal = FactorsAsImages(train)
    results["ideal (true factors)"] = score("ideal", f_tr.astype(float), f_tr, f_te.astype(float), f_te, ideal,
                                            lambda x: x, a.points)
    rng = np.random.default_rng(0)
    gen = torch.Generator().manual_seed(0)
    results["random codes"] = score("random", rng.standard_normal((len(tr), 10)), f_tr, rng.standard_normal((len(te), 10)), f_te,
                                    ideal, lambda x: torch.randn(len(x), 10, generator=gen, dtype=torch.float64), a.points)

    # (c) a trained betavae
    run = a.out / "betavae"
    if not (a.reuse and (run / "model.safetensors").exists()):
        model = fk.models.build("betavae", train, seed=0)
        t = time.perf_counter()
        fk.train(model, train, steps=a.steps, out=run, progress=False, num_workers=1)
        results["betavae_train_s"] = round(time.perf_counter() - t, 1)
    model = fk.load(run).eval()

    def rep(x):
        with torch.no_grad():
            return torch.cat([model.representation(x[i : i + 512]) for i in range(0, len(x), 512)]).double()

    c_tr, c_te = rep(train.images_at(tr)).numpy(), rep(test.images_at(te)).numpy()
    results[f"betavae ({a.steps} steps)"] = score("betavae", c_tr, f_tr, c_te, f_te, test, rep, a.points)
    (a.out / "results.json").write_text(json.dumps(results, indent=1))

    rows = [k for k in results if isinstance(results[k], dict)]
    print("\n| metric | " + " | ".join(rows) + " |\n|---|" + "---|" * len(rows))
    for k in KEYS:
        print(f"| {k} | " + " | ".join(f"{results[r]['scores'].get(k, float('nan')):.3f}" for r in rows) + " |")
    print(f"\nhiggins / factorvae: {a.points} training points, {a.points // 2} evaluation points (study: 10,000 / 5,000)")


if __name__ == "__main__":
    main()
