"""DCI: the vectorised backend against scikit-learn's own spread over seeds (issue 15, must-show 4).

A fixed table — shapes2d factors (``--rows`` train rows, half as many test rows, seed 0) read by
6 noisy linear codes — is scored by ``backend="sklearn"`` (``GradientBoostingClassifier``,
``random_state`` = 0 … ``--seeds``−1) and by factorkit's vectorised fit with both tie rules:
``ties="random"`` (default: a seeded random one of several features with exactly the same best
split, as scikit-learn's random feature order gives) over the same seeds, and ``ties="first"``
(the lowest feature index: the rule before issue 15).

    python benchmarks/dci_spread.py --rows 2000 --seeds 10 --out runs/bench-dci-spread
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from unittest import mock

import numpy as np

import factorkit as fk
from factorkit.metrics import factors as F
from factorkit.metrics import gbt
from factorkit.metrics.evaluate import rows

KEYS = ("dci.disentanglement", "dci.completeness", "dci.informativeness_train", "dci.informativeness_test")


def table(n: int):
    train, test = fk.data.load("shapes2d", "train"), fk.data.load("shapes2d", "test")
    f_tr, f_te = train.factor_array()[rows(len(train), n, 0)], test.factor_array()[rows(len(test), n // 2, 1)]
    rng = np.random.default_rng(0)
    w = rng.normal(size=(f_tr.shape[1], 6))

    def codes(f):
        return ((f / np.maximum(f.max(0), 1)) @ w + 0.3 * rng.normal(size=(len(f), 6))).astype(np.float32)

    return codes(f_tr), f_tr, codes(f_te), f_te


def scores(d: dict) -> dict:
    return {k: round(float(d[k]), 6) for k in KEYS}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=2000)
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--out", type=Path, default=Path("runs/bench-dci-spread"))
    a = p.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    data = table(a.rows)
    out: dict = {"rows": a.rows, "sklearn": [], "vectorised": [], "first": None, "seconds": {}}
    for s in range(a.seeds):
        t = time.perf_counter()
        out["sklearn"].append(scores(F.dci(*data, backend="sklearn", seed=s)))
        out["seconds"].setdefault("sklearn", []).append(round(time.perf_counter() - t, 1))
        t = time.perf_counter()
        out["vectorised"].append(scores(F.dci(*data, backend="vectorised", seed=s)))
        out["seconds"].setdefault("vectorised", []).append(round(time.perf_counter() - t, 1))
        print(f"seed {s}: sklearn {out['sklearn'][-1]}\n        vectorised {out['vectorised'][-1]}", flush=True)
    real = gbt.GradientBoosting.__init__

    def first(self, *args, **kw):
        real(self, *args, **{**kw, "ties": "first"})

    with mock.patch.object(gbt.GradientBoosting, "__init__", first):
        out["first"] = scores(F.dci(*data, backend="vectorised", seed=0))
    (a.out / "dci_spread.json").write_text(json.dumps(out, indent=1))
    print("\n| score | scikit-learn, seeds 0–%d: min … max | vectorised (random ties), same seeds: min … max | "
          "vectorised, seed 0 | ties=\"first\" |\n|---|---|---|---|---|" % (a.seeds - 1))
    for k in KEYS:
        sk = [r[k] for r in out["sklearn"]]
        ve = [r[k] for r in out["vectorised"]]
        inside = "inside" if min(sk) <= ve[0] <= max(sk) else "OUTSIDE"
        fi = out["first"][k]
        print(f"| {k} | {min(sk):.5f} … {max(sk):.5f} | {min(ve):.5f} … {max(ve):.5f} | {ve[0]:.5f} ({inside}) | "
              f"{fi:.5f} ({'inside' if min(sk) <= fi <= max(sk) else 'OUTSIDE'}) |")


if __name__ == "__main__":
    main()
