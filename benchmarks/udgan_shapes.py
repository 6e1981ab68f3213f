"""UD-GAN on shapes2d (issue 19): the paper's Table 1 rows with the disentanglement metrics and their
floors, Table 7 (the moment guidance against the true factors), what each knob does as the judge
reads it, traversal grids, and the training cost.

    python benchmarks/udgan_shapes.py --out runs/bench-udgan-shapes --steps 3000
    python benchmarks/udgan_shapes.py --out runs/bench-udgan-shapes --only table7
    python benchmarks/udgan_shapes.py --out runs/bench-udgan-shapes --rows udgan udgan-g --steps 3000
    python benchmarks/udgan_shapes.py --out runs/bench-udgan-cost --rows udgan-g --steps 3000 --batch 16 --only cost
    python benchmarks/udgan_shapes.py --out runs/bench-udgan-phi1 --rows udgan --steps 3000 --batch 16 --set lambda_phi=1

Rows (Table 1): β-VAE (β = 4), DIP-VAE-I, InfoGAN, UD-GAN, UD-GAN-G (moments), each its fast preset
with the *same budget*: ``--steps`` steps of ``--batch`` real images, seed 0, one run at a time.
Metrics on the test split: Higgins (the paper's), MIG, DCI, FactorVAE, SAP, modularity, each with
its measured random-code floor; the interventional metrics on ``--points`` training / half as many
evaluation points (disentanglement_lib: 10,000 / 5,000; cut for 2 cores and said so).

Table 7: Pearson correlations of eq. 8's M̂_x, M̂_y and Ŝ with x, y, scale and shape on real test
images (no training involved: the guidance functions themselves).

Knobs: for every knob, ``--knob-samples`` draws with the knob swept over 7 values in [−1, 1]; the
judge (the cached factor classifier) reads every factor of every image; per factor, the mean over
draws of the range of the read value (in steps of that factor, divided by its number of values − 1,
so 1 = the whole range). The factor that moves most is the knob's; the table gives it and the
runner-up. Results: ``OUT/results.json`` and a markdown summary on stdout.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

import factorkit as fk
from factorkit.api import build_run_config
from factorkit.errors import UsageError
from factorkit.metrics.classifier import evaluation_classifier
from factorkit.metrics.evaluate import Settings, evaluate
from factorkit.nn.guidance import moments
from factorkit.viz import grids

ROWS = {  # row → (model, overrides)
    "β-VAE": ("betavae", {"beta": 4.0}),
    "DIP-VAE": ("dipvae", {}),
    "InfoGAN": ("infogan", {}),
    "UD-GAN": ("udgan", {}),
    "UD-GAN-G": ("udgan-g", {}),
}
PAPER = {"β-VAE": 99.2, "DIP-VAE": 98.7, "InfoGAN": 88.4, "UD-GAN": 99.1, "UD-GAN-G": 100.0}
METRICS = ["higgins", "mig", "dci", "factorvae", "sap", "modularity"]


def table7(test, n: int, seed: int = 0) -> dict:
    """Correlations of (M̂_x, M̂_y, Ŝ) with the factors x, y, scale, shape on ``n`` real images."""
    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(len(test), min(n, len(test)), replace=False))
    m = np.concatenate([moments(test.images_at(rows[i : i + 2048])).numpy() for i in range(0, len(rows), 2048)])
    names = [f.name for f in test.info.factors]
    f = test.factor_array()[rows]
    out = {}
    for j, guide in enumerate(("M_x", "M_y", "S")):
        for factor in ("x", "y", "scale", "shape"):
            out[f"{guide}~{factor}"] = float(np.corrcoef(m[:, j], f[:, names.index(factor)])[0, 1])
    return out


@torch.no_grad()
def knob_effects(model, judge, info, samples: int, seed: int = 0) -> list[dict]:
    """Per knob: each factor's mean read range over ``samples`` draws with the knob swept."""
    values = torch.linspace(-1, 1, 7)
    span = np.array([max(f.size - 1, 1) for f in info.factors], dtype=float)
    out = []
    for k in range(model.sample_code(1).dim):
        imgs = model.traverse_samples(samples, k, values, torch.Generator().manual_seed(seed + k))
        read = judge.read(imgs.flatten(0, 1)).numpy().reshape(samples, len(values), -1)
        moved = ((read.max(1) - read.min(1)) / span).mean(0)
        order = np.argsort(-moved)
        out.append({"knob": k, "label": model.dimension_label(k).strip(" ()"),
                    "moves": {info.factors[j].name: round(float(moved[j]), 3) for j in range(len(span))},
                    "top": info.factors[order[0]].name, "top_by": round(float(moved[order[0]]), 3),
                    "second": info.factors[order[1]].name, "second_by": round(float(moved[order[1]]), 3)})
    return out


@torch.no_grad()
def knob_grid(model, out_png: Path) -> str:
    """One row per knob: one draw with that knob swept from −1 to 1 (7 columns)."""
    g = torch.Generator().manual_seed(0)
    strips = torch.cat([model.traverse_samples(1, k, torch.linspace(-1, 1, 7), g) for k in range(model.sample_code(1).dim)])
    return str(grids.save_png(grids.grid(strips), out_png))


def pick_rows(asked: list[str], rows: dict) -> list[str]:
    """Row names (or their model names) as asked, in the order given."""
    return [r for a in asked for r in rows if a in (r, rows[r][0])]


def train_row(name: str, model_name: str, overrides: dict, train, out: Path, steps: int, batch: int) -> dict:
    run = out / name.replace(" ", "").replace("β", "beta")
    if (run / "model.safetensors").is_file():
        log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
        return {"run": str(run), "wall_s": log[-1]["elapsed_s"], "steps_per_s": steps / log[-1]["elapsed_s"],
                "reused": True}
    model = fk.models.build(model_name, train, preset="fast", seed=0, **overrides)
    t = time.perf_counter()
    fk.train(model, train, steps=steps, out=run, progress=False, batch_size=batch)
    wall = time.perf_counter() - t
    return {"run": str(run), "wall_s": round(wall, 1), "steps_per_s": round(steps / wall, 2), "reused": False}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--rows", nargs="*", default=list(ROWS), help=f"row names or models: {', '.join(ROWS)}")
    ap.add_argument("--points", type=int, default=2000, help="interventional metrics' training points")
    ap.add_argument("--knob-samples", type=int, default=32)
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a model config override for every row picked (e.g. lambda_phi=1); repeatable")
    ap.add_argument("--only", choices=["table7", "cost"],
                    help="table7: only Table 7 (no training); cost: only train the rows and time them (nothing else running)")
    args = ap.parse_args()
    out = Path(args.out)
    for name in pick_rows(args.rows, ROWS):  # RunConfig.parse_strings: unknown keys and wrong types refused
        try:
            typed = build_run_config(ROWS[name][0], "shapes2d").parse_strings(
                [a if a.startswith("model.") else f"model.{a}" for a in args.set])
        except UsageError as exc:
            ap.error(f"{name}: {exc}")
        ROWS[name] = (ROWS[name][0], {**ROWS[name][1], **{k.removeprefix("model."): v for k, v in typed.items()}})
    if args.only == "cost":
        train = fk.data.load("shapes2d", split="train")
        for name in pick_rows(args.rows, ROWS):
            row = train_row(name, *ROWS[name], train, out, args.steps, args.batch)
            print(f"{name}: {args.steps} steps × batch {args.batch} in {row['wall_s'] / 60:.1f} min "
                  f"({row['steps_per_s']:.2f} steps/s){' (reused)' if row.get('reused') else ''}", flush=True)
        return
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / "results.json"
    results = json.loads(results_path.read_text()) if results_path.is_file() else {}
    test = fk.data.load("shapes2d", split="test")
    results["table7"] = table7(test, 20000)
    print("Table 7 (20,000 test images): " + ", ".join(f"{k} {v:+.3f}" for k, v in results["table7"].items()))
    results_path.write_text(json.dumps(results, indent=1))
    if args.only == "table7":
        return
    train = fk.data.load("shapes2d", split="train")
    judge, report = evaluation_classifier(train, test)
    results["judge"] = report
    half = max(1, args.points // 2)
    params = {m: {"num_train": args.points, "num_eval": half} for m in ("higgins", "factorvae")}
    for name in pick_rows(args.rows, ROWS):
        model_name, overrides = ROWS[name]
        row = train_row(name, model_name, overrides, train, out, args.steps, args.batch)
        model = fk.load(row["run"])
        record = evaluate(model, test, metrics=METRICS, settings=Settings(fast=True, params=params),
                          out=Path(row["run"]) / "metrics.json")
        row.update(metrics=record["metrics"], floors=record["floors"], seconds=record["seconds"])
        if model.supports("sample"):
            row["knobs"] = knob_effects(model, judge, train.info, args.knob_samples)
            row["traversals"] = knob_grid(model, Path(row["run"]) / "knob_traversals.png")
        results.setdefault("rows", {})[name] = row
        results_path.write_text(json.dumps(results, indent=1))
        m, f = record["metrics"], record["floors"]
        print(f"{name}: Higgins {100 * m['higgins']:.1f} % (paper {PAPER[name]}, floor {100 * f['higgins']:.1f}); "
              + ", ".join(f"{k} {m[k]:.3f} ({f[k]:.3f})" for k in ("mig", "dci.disentanglement", "factorvae", "sap",
                                                                     "modularity"))
              + f"; {row['wall_s']} s, {row['steps_per_s']} steps/s")
        for k in row.get("knobs", []):
            print(f"  knob {k['knob']}{' (' + k['label'] + ')' if 'guided' in k['label'] else ''}: {k['top']} "
                  f"{k['top_by']:.2f}, then {k['second']} {k['second_by']:.2f}")


if __name__ == "__main__":
    main()
