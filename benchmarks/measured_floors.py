"""Measured floors of every metric on shapes2d and faces (issue 15, must-show 3).

For each dataset: the study's rows (10,000 train / 5,000 test, seed 0) and a code of ``--dim``
dimensions; each metric that reads codes is scored on seeded Gaussian codes of that shape by
``factorkit.metrics.floors`` (what ``factorkit evaluate`` files beside every score). The
interventional metrics (higgins, factorvae) run at their registry defaults (10,000 + 5,000
points) with codes that ignore the image, so nothing is rendered. Edit metrics have no
random-code floor; edit-success's is the majority-class rate, printed per attribute.

The codes' shape is all a floor depends on besides the rows, so the model here is an untrained
``ae`` with ``latent_dim=--dim`` (its codes are never scored).

    python benchmarks/measured_floors.py --dim 10 --out runs/bench-measured-floors
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import factorkit as fk
from factorkit.metrics import evaluate as EV
from factorkit.metrics import floors as FL
from factorkit.metrics import registry as R


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--dim", type=int, default=10)
    p.add_argument("--data", default="shapes2d,faces")
    p.add_argument("--out", type=Path, default=Path("runs/bench-measured-floors"))
    a = p.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    params = R.resolve_params({})
    results = {}
    for name in a.data.split(","):
        train, test = fk.data.load(name, "train"), fk.data.load(name, "test")
        model = fk.models.build("ae", train, latent_dim=a.dim)
        model.eval()
        ctx = EV.Context(model, test, train, EV.Settings(), progress=False)
        ctx.encode_rows()
        out, secs = {}, {}
        for spec in R.METRICS.values():
            if not (spec.uses_codes or spec.group == "interventional") or spec.applies(model, test.info) is not None:
                continue
            if spec.name == "attr-linear":
                continue  # the same protocol as attr-projection
            t = time.perf_counter()
            out.update(FL.random_code_floor(ctx, spec, params[spec.name], cache=False))
            secs[spec.name] = round(time.perf_counter() - t, 1)
            print(f"{name} {spec.name}: {secs[spec.name]} s", flush=True)
        if test.info.attributes:
            rates = FL.majority_rate(test.attribute_array())
            out.update({f"edit-success.{att}.attr (majority)": float(r) for att, r in zip(test.info.attributes, rates)})
        results[name] = {"rows": [int(ctx.c_tr.shape[0]), int(ctx.c_te.shape[0])], "dim": a.dim,
                         "floors": out, "seconds": secs}
    (a.out / "floors.json").write_text(json.dumps(results, indent=1))
    keys = sorted({k for r in results.values() for k in r["floors"]}, key=lambda k: (k.startswith("edit"), k))
    print("\n| score | " + " | ".join(results) + " |\n|---|" + "---|" * len(results))
    for k in keys:
        print(f"| {k} | " + " | ".join(f"{r['floors'][k]:.3f}" if k in r["floors"] else "—" for r in results.values()) + " |")


if __name__ == "__main__":
    main()
