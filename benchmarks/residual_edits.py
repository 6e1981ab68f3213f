"""``edit_output=decoded`` against ``residual`` on one trained model (issues 17 and 18): does handing
the edit back as the input plus the decoder's change keep identity, and does the edit still land?

    python benchmarks/residual_edits.py --model ifcvae-gan --out runs/bench-residual/ifcvae --steps 3000
    python benchmarks/residual_edits.py --model dna-gan --out runs/bench-residual/dnagan --steps 6000
    python benchmarks/residual_edits.py --model ifcvae-gan --out runs/bench-residual/ifcvae-mean --set aux_input=mean

Trains the model's ``fast`` preset on faces (``--seed``, default 0; or reuses ``OUT/run``), then scores the *same
weights* twice — the switch only changes what an edit returns, not training:

- ``ifcvae-gan``: for every attribute in ŷ, edit-success both ways, identity-retention of the
  flips (with the reconstruction's), the counterfactual "closer" fraction and PSNR against the true
  counterfactual, on 1,000 test faces per attribute and direction (as results §11's "all" table);
- ``dna-gan``: pair-swap on 500 test pairs per attribute (as results §12): B2 (add) and A2 (remove)
  against the true counterfactuals, judged.

Grids (``OUT/grid-decoded.png``, ``OUT/grid-residual.png``): rows = test faces; ifcvae-gan:
input, reconstruction, ŷ = 0 and ŷ = 1 per attribute; dna-gan: per attribute A, A2, B, B2.
Prints a markdown table; ``OUT/results.json`` keeps every number.
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
from factorkit.demo import DEMO_TRAIN
from factorkit.errors import UsageError
from factorkit.metrics.classifier import evaluation_classifier
from factorkit.metrics.editing import pair_swap
from factorkit.metrics.evaluate import Settings, evaluate
from factorkit.viz import grids

MODES = ("decoded", "residual")


def train(model_name: str, run: Path, steps: int, overrides: dict, seed: int = 0) -> dict:
    cost_file = run / "cost.json"
    if cost_file.is_file():
        cost = json.loads(cost_file.read_text())
        if cost.get("overrides", {}) != overrides or cost.get("seed", 0) != seed:
            raise SystemExit(f"{run} was trained with {cost.get('overrides', {})}, seed {cost.get('seed', 0)}, "
                             f"not {overrides}, seed {seed}: use another --out")
        return cost
    data = fk.data.load("faces", "train")
    model = fk.models.build(model_name, data, preset="fast", seed=seed, **overrides)
    t0 = time.perf_counter()
    fk.train(model, data, steps=steps, out=run, **{**DEMO_TRAIN, "checkpoint_every": 1000, "image_every": steps},
             progress=False)
    cost = {"model": model_name, "overrides": overrides, "seed": seed, "steps": steps, "train_s": round(time.perf_counter() - t0, 1),
            "threads": torch.get_num_threads()}
    cost["steps_per_s"] = round(steps / cost["train_s"], 2)
    cost_file.write_text(json.dumps(cost, indent=1))
    return cost


@torch.no_grad()
def grid(model, test, out: Path) -> None:
    x = test.images_at(np.arange(6))
    if model.name == "dna-gan":
        attrs = test.attribute_array()
        cols = []
        for a in model.edit_attributes():
            k = test.info.attribute_index(a)
            on, off = np.flatnonzero(attrs[:, k] > 0.5)[:6], np.flatnonzero(attrs[:, k] < 0.5)[:6]
            xa, xb = test.images_at(on), test.images_at(off)
            kids = model.crossbreed(xa, xb, a)
            cols += [xa, kids["A2"], xb, kids["B2"]]
        grids.save_png(grids.grid(torch.stack(cols, 1).clamp(0, 1)), out, scale=2)
    else:
        grids.save_png(grids.flip_grid(model, x, model.edit_attributes()), out, scale=2)


def score(model, test, train_data, judge) -> dict:
    attrs = tuple(model.edit_attributes())
    if model.name == "dna-gan":
        return {a: pair_swap(model, test, a, judge, max_pairs=500, seed=0) for a in attrs}
    record = evaluate(model, test, metrics=["edit-success", "identity-retention", "counterfactual"],
                      train_dataset=train_data, settings=Settings(attributes=attrs, floors=False, image_rows=1000))
    m = record["metrics"]
    return {a: {"add": m[f"edit-success.{a}.add"], "remove": m[f"edit-success.{a}.remove"],
                "identity": m[f"identity-retention.{a}.edit"],
                "identity_reconstruction": m[f"identity-retention.{a}.reconstruction"],
                "closer": m[f"counterfactual.{a}.closer_fraction"],
                "psnr_cf": m.get(f"counterfactual.{a}.psnr_edit"),
                "psnr_cf_reconstruction": m.get(f"counterfactual.{a}.psnr_reconstruction")}
            for a in attrs}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", choices=["ifcvae-gan", "dna-gan"], required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, default=None, help="default: the fast preset's")
    ap.add_argument("--seed", type=int, default=0, help="the training seed (default 0)")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="a model config value over the fast preset (e.g. --set aux_input=mean); repeatable")
    args = ap.parse_args()
    try:  # RunConfig.parse_strings: unknown keys and wrong types are refused, naming the valid ones
        typed = build_run_config(args.model, "faces").parse_strings(
            [a if a.startswith("model.") else f"model.{a}" for a in args.set])
    except UsageError as exc:
        ap.error(str(exc))
    overrides = {k.removeprefix("model."): v for k, v in typed.items()}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    test, train_data = fk.data.load("faces", "test"), fk.data.load("faces", "train")
    steps = args.steps or {"ifcvae-gan": 3000, "dna-gan": 6000}[args.model]
    cost = train(args.model, out / "run", steps, overrides, args.seed)
    judge, _ = evaluation_classifier(train_data, test)
    results = {"cost": cost}
    for mode in MODES:
        model = fk.load(out / "run")
        model.config.edit_output = mode
        t0 = time.perf_counter()
        results[mode] = score(model, test, train_data, judge)
        grid(model, test, out / f"grid-{mode}.png")
        print(f"{mode}: scored in {time.perf_counter() - t0:.0f} s", flush=True)
        (out / "results.json").write_text(json.dumps(results, indent=1))
    print(f"\n{args.model}, fast preset {overrides or ''}, {cost['steps']} steps in {cost['train_s'] / 60:.1f} min "
          f"({cost['steps_per_s']} steps/s)\n")
    if args.model == "dna-gan":
        print("| attribute | edit output | B2 add: success | closer | identity (recon) | A2 remove: success | closer | identity (recon) |")
        print("|---|---|---|---|---|---|---|---|")
        for a in results["decoded"]:
            for mode in MODES:
                s = results[mode][a]
                print(f"| {a} | {mode} | {s['add.success']:.3f} | {s['add.closer']:.3f} | {s['add.identity']:.3f} "
                      f"({s['add.identity_reconstruction']:.3f}) | {s['remove.success']:.3f} | {s['remove.closer']:.3f} | "
                      f"{s['remove.identity']:.3f} ({s['remove.identity_reconstruction']:.3f}) |")
    else:
        print("| attribute | edit output | identity kept (recon) | add 0→1 | remove 1→0 | closer | PSNR vs truth (recon) |")
        print("|---|---|---|---|---|---|---|")
        for a in results["decoded"]:
            for mode in MODES:
                s = results[mode][a]
                p = f"{s['psnr_cf']:.2f} ({s['psnr_cf_reconstruction']:.2f})" if s.get("psnr_cf") is not None else "—"
                print(f"| {a} | {mode} | {s['identity']:.3f} ({s['identity_reconstruction']:.3f}) | {s['add']:.3f} | "
                      f"{s['remove']:.3f} | {s['closer']:.3f} | {p} |")


if __name__ == "__main__":
    main()
