"""Issue 21's metrics (IRS, the unsupervised scores, MED, InfoM, InfoC, InfoE, downstream) on
shapes2d and faces for ideal codes, random codes (the measured floor) and trained runs
(must-show 2).

Rows as ``factorkit evaluate``: 10,000 train-split and 5,000 test-split rows, seed 0, drawn
without replacement (disjoint). Codes:

* ``ideal`` — the true factors themselves, one code per factor (as floats);
* ``random`` — what ``fk.metrics.score`` files as the floor of each score: the metric on seeded
  Gaussian codes of the scored code's shape, same rows (printed beside every run's score);
* each ``--run`` — the model's representation of the same images.

Every score goes through ``fk.metrics.score`` (the registry's runners, as ``evaluate`` and
``factorkit score`` use them).

    python benchmarks/metrics_table.py --run runs/metrics-betavae-shapes2d --run runs/metrics-betavae-faces \\
        --run runs/serve/mddae-faces --out runs/bench-metrics-table
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

import factorkit as fk
from factorkit.metrics import arrays as AR
from factorkit.metrics import evaluate as EV

NEW = ["irs", "unsupervised", "med", "infom", "infoc", "infoe", "downstream"]


class _Rows:
    """The evaluation rows' factors (``EV.rows``: the same rows ``Context.encode_rows`` encodes)."""

    def __init__(self, data: str) -> None:
        train, test = fk.data.load(data, "train"), fk.data.load(data, "test")
        s = EV.Settings()
        self.f_tr = train.factor_array()[EV.rows(len(train), s.num_train, s.seed)]
        self.f_te = test.factor_array()[EV.rows(len(test), s.num_test, s.seed + 1)]


def encoded(data: str, model) -> EV.Context:
    train, test = fk.data.load(data, "train"), fk.data.load(data, "test")
    ctx = EV.Context(model, test, train, EV.Settings(), progress=False)
    ctx.encode_rows()
    return ctx


def scored(ctx, codes_tr, codes_te, fast: bool) -> dict:
    t = time.perf_counter()
    out = AR.score(codes_tr, ctx.f_tr, codes_te, ctx.f_te, metrics=NEW, fast=fast)
    out["total_s"] = round(time.perf_counter() - t, 1)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run", action="append", default=[], help="a run directory (its dataset is read from it)")
    p.add_argument("--data", default="shapes2d,faces")
    p.add_argument("--fast", action="store_true", help="each metric's documented fast mode")
    p.add_argument("--out", type=Path, default=Path("runs/bench-metrics-table"))
    a = p.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    results: dict = {}
    for data in a.data.split(","):
        ctx = _Rows(data)
        ideal = scored(ctx, ctx.f_tr.astype(np.float64), ctx.f_te.astype(np.float64), a.fast)
        results[f"{data}/ideal"] = ideal
        print(f"{data} ideal: {ideal['total_s']} s", flush=True)
        for run in a.run:
            model = fk.load(run)
            if model.run_config.data_name != data:
                continue
            model.eval()
            rctx = encoded(data, model)
            assert np.array_equal(rctx.f_tr, ctx.f_tr) and np.array_equal(rctx.f_te, ctx.f_te)
            out = scored(rctx, rctx.c_tr, rctx.c_te, a.fast)
            results[f"{data}/{model.name}"] = {**out, "run": run, "step": EV._step(model)}
            print(f"{data} {model.name} ({run}): {out['total_s']} s", flush=True)
    (a.out / "table.json").write_text(json.dumps(results, indent=1, default=str))
    keys = [k for k in next(iter(results.values()))["metrics"] if not k.endswith(("num_active_dims", "fallbacks"))]
    for data in a.data.split(","):
        cols = [k for k in results if k.startswith(f"{data}/")]
        print(f"\n| {data} | " + " | ".join(c.split("/")[1] + (" (floor)" if i else "") for c in cols
                                             for i in (0, 1)) + " |")
        print("|---" * (1 + 2 * len(cols)) + "|")
        for k in keys:
            cells = []
            for c in cols:
                r = results[c]
                cells += [f"{r['metrics'].get(k, float('nan')):.3f}", f"{r['floors'].get(k, float('nan')):.3f}"]
            print(f"| {k} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
