"""DNA-GAN on faces (issue 18): the swap checked against the true counterfactual for every trained
attribute, the paper's two claims (annihilation, iterative training) measured, and the figures.

    python benchmarks/dnagan_faces.py --out runs/bench-dnagan                      # every row
    python benchmarks/dnagan_faces.py --out runs/bench-dnagan --rows main --steps 6000
    python benchmarks/dnagan_faces.py --out runs/bench-dnagan --reuse              # re-measure only

Rows (``ROWS``; the fast preset with the listed overrides, seed 0 unless ``--seed``):

* ``main`` — the fast preset (``STEPS`` steps);
* ``no-annihilation`` — ``annihilate=false`` (§3.3's ablation), same steps;
* ``joint`` / ``cyclic`` / ``random_pairs`` — the three pair schedules at equal compute: the same
  number of images through the networks (joint draws a pair batch for every attribute each step,
  so it gets steps / n; ``cyclic`` is ``main``'s schedule and reuses its run when the preset is cyclic
  and the steps agree);
* ``recipient-labels`` — the critic told each child its own labels with attribute i set
  (``critic_labels=recipient``) instead of the donor's whole label vector (the code);
* ``recipient-gan4`` — the same with the children's adversarial term weighted 4 (``lambda_gan=4``).
* ``residual-children`` — ELEGANT's residual children (``children=residual``: the critic judges each
  child as its parent plus the decoder's change), recipient labels, residual edits;
  ``residual-children-ns`` the same with the paper's non-saturating GAN (as ELEGANT's BCE);
  ``residual-children-donor`` with the code's donor labels; ``residual-children-projection`` with a
  projection critic (``critic_condition=projection``); ``residual-children-c5`` with five critic steps
  per generator step (WGAN's n_critic; the code runs one); ``residual-children-cls`` with AttGAN's
  attribute classifier on the children (``lambda_cls=1``; ``-cls3``: 3); ``residual-children-cls-l1``
  adds Shen & Liu's L1 on each child's change (``lambda_residual=1``; ``-l1w``: 0.3); ``-l1w-noise``
  the 0.3 row with Gaussian noise (σ = 0.2 on [−1, 1]) on every image the classifier sees (``cls_noise``);
  ``-l1-noise`` the same noise with ``lambda_residual=1``; ``-l1-noise4`` with σ = 0.4; ``-l1w-noise-mask``
  the ``-l1w-noise`` row with GANimation's attention mask on each child's change (``children=masked``,
  ``lambda_mask=0.1``, edited as ``edit_output=masked``; ``-mask03``: 0.03).
  ``-l1w-noise-skip1`` / ``-skip2``: the ``-l1w-noise`` row with AttGAN's shortcut layers (``skips=1``: the
  encoder's s/4 map of the edited image joined into the decoder; ``2``: also the s/2 map).
  ``-skip1-mask``: ``skips=1`` with the ``-mask`` row's attention mask (λ_mask 0.1).
  ``-skip1-gp02`` / ``-skip1-gp1``: ``skips=1`` with a WGAN-GP critic (``gan=wgan-gp``, λ_gp 10, no
  BatchNorm, no clipping) at ``lambda_gan`` 0.02 / 0.1 (AttGAN's adversarial weight against its
  reconstruction / against its classifier term, in this model's units).

Scores (test split): PSNR of the reconstruction (1,000 images); for every attribute,
``pair-swap`` on 500 test pairs — B2 (B given A's piece) against B's counterfactual with the
attribute on and A2 (A's piece annihilated) against A's with it off: PSNR and "closer" (nearer
the counterfactual than the reconstruction), the judge's success and identity-retention, with the
reconstruction's identity beside it. ``OUT/results.json``, a markdown summary on stdout, and the
figures under ``OUT/figures``: per attribute the crossbreeds next to the truth; Fig. 5's swaps of
attribute pairs; Fig. 4's two-attribute interpolation.
"""

from __future__ import annotations

import argparse
import functools
import json
import time
from pathlib import Path

import numpy as np

import factorkit as fk
from factorkit.demo import DEMO_TRAIN
from factorkit.errors import NonFiniteLoss
from factorkit.metrics.classifier import evaluation_classifier
from factorkit.metrics.editing import _batched, _images, pair_swap
from factorkit.metrics.images import psnr
from factorkit.viz import grids

STEPS = 6000
RESIDUAL = {"children": "residual", "edit_output": "residual"}  # trained and edited as x + the decoder's change
CLS = {**RESIDUAL, "critic_labels": "recipient", "lambda_cls": 1.0}  # the classifier rows' common ground
SKIP1 = {**CLS, "lambda_residual": 0.3, "cls_noise": 0.2, "skips": 1}  # the -l1w-noise-skip1 row, base of its variants
ROWS: dict[str, dict] = {
    "main": {},
    "no-annihilation": {"annihilate": False},
    "joint": {"schedule": "joint"},
    "cyclic": {"schedule": "cyclic"},
    "random_pairs": {"schedule": "random_pairs"},
    "recipient-labels": {"critic_labels": "recipient"},
    "recipient-gan4": {"critic_labels": "recipient", "lambda_gan": 4.0},
    "residual-children": {**RESIDUAL, "critic_labels": "recipient"},
    "residual-children-ns": {**RESIDUAL, "critic_labels": "recipient", "gan": "nonsaturating"},
    "residual-children-donor": RESIDUAL,
    "residual-children-projection": {**RESIDUAL, "critic_labels": "recipient", "critic_condition": "projection"},
    "residual-children-c5": {**RESIDUAL, "critic_labels": "recipient", "critic_steps": 5},
    "residual-children-cls": CLS,
    "residual-children-cls3": {**CLS, "lambda_cls": 3.0},
    "residual-children-cls-l1": {**CLS, "lambda_residual": 1.0},
    "residual-children-cls-l1w": {**CLS, "lambda_residual": 0.3},
    "residual-children-cls-l1w-noise": {**CLS, "lambda_residual": 0.3, "cls_noise": 0.2},
    "residual-children-cls-l1-noise": {**CLS, "lambda_residual": 1.0, "cls_noise": 0.2},
    "residual-children-cls-l1-noise4": {**CLS, "lambda_residual": 1.0, "cls_noise": 0.4},
    "residual-children-cls-l1w-noise-mask": {**CLS, "lambda_residual": 0.3, "cls_noise": 0.2, "children": "masked",
                                             "edit_output": "masked", "lambda_mask": 0.1},
    "residual-children-cls-l1w-noise-mask03": {**CLS, "lambda_residual": 0.3, "cls_noise": 0.2, "children": "masked",
                                               "edit_output": "masked", "lambda_mask": 0.03},
    "residual-children-cls-l1w-noise-skip1": SKIP1,
    "residual-children-cls-l1w-noise-skip2": {**CLS, "lambda_residual": 0.3, "cls_noise": 0.2, "skips": 2},
    "residual-children-cls-l1w-noise-skip1-gp02": {**SKIP1, "gan": "wgan-gp", "lambda_gan": 0.02},
    "residual-children-cls-l1w-noise-skip1-gp1": {**SKIP1, "gan": "wgan-gp", "lambda_gan": 0.1},
    "residual-children-cls-l1w-noise-skip1-mask": {**SKIP1, "children": "masked", "edit_output": "masked",
                                                   "lambda_mask": 0.1},
}
PAIRS = [("Bangs", "Eyeglasses"), ("Smiling", "Wearing_Hat"), ("Bangs", "Smiling"), ("Eyeglasses", "Wearing_Hat")]


def row_steps(row: str, steps: int, n_attr: int) -> int:
    return max(1, steps // n_attr) if row == "joint" else steps


def train_row(row: str, overrides: dict, steps: int, out: Path, reuse: bool, seed: int = 0) -> tuple[Path, dict]:
    run = out / row
    cost_file = run / "cost.json"
    if reuse and cost_file.is_file():
        return run, json.loads(cost_file.read_text())
    train = fk.data.load("faces", "train")
    model = fk.models.build("dna-gan", train, preset="fast", seed=seed, **overrides)
    print(f"== {row}: dna-gan fast {overrides}, {steps} steps, seed {seed}", flush=True)
    t0 = time.perf_counter()
    try:
        fk.train(model, train, steps=steps, out=run, **{**DEMO_TRAIN, "checkpoint_every": 1000, "image_every": steps, "seed": seed},
                 progress=False)
    except NonFiniteLoss as exc:
        print(f"   diverged: {exc}", flush=True)
        return run, {"steps": steps, "failed": str(exc)}
    cost = {"overrides": overrides, "steps": steps, "train_s": round(time.perf_counter() - t0, 1),
            "batch_size": model.train_overrides.get("batch_size"), "attributes": list(model.attr_names),
            "piece_channels": model.config.piece_channels, "latent_channels": model.latent_shape[0],
            "schedule": model.config.schedule, "seed": seed}
    cost["steps_per_s"] = round(steps / cost["train_s"], 2)
    cost_file.write_text(json.dumps(cost, indent=1))
    return run, cost


def measure(run: Path, edit_output: str | None = None, strength: float = 1.0) -> dict:
    model = fk.load(run, edit_output=edit_output)
    if strength != 1.0:  # every pair-swap child bred at this strength (crossbreed's ``strength``)
        model.crossbreed = functools.partial(type(model).crossbreed, model, strength=strength)
    test, train = fk.data.load("faces", "test"), fk.data.load("faces", "train")
    judge, report = evaluation_classifier(train, test)
    rows = np.sort(np.random.default_rng(2).choice(len(test), 1000, replace=False))
    x = _images(test, rows)
    out = {"psnr": float(psnr(x, _batched(model.reconstruct, x).clamp(0, 1)).mean()),
           "judge_accuracy": {a: report["accuracy"].get(a) for a in model.edit_attributes()}}
    for a in model.edit_attributes():
        out[a] = pair_swap(model, test, a, judge, max_pairs=500, seed=0)
    return out


def figures(run: Path, folder: Path) -> list[Path]:
    model = fk.load(run)
    test = fk.data.load("faces", "test")
    attrs = test.attribute_array()
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    paths = []

    def having(name: str, value: int, n: int) -> np.ndarray:
        k = test.info.attribute_index(name)
        return np.sort(rng.choice(np.flatnonzero((attrs[:, k] > 0.5) == bool(value)), n, replace=False))

    for a in model.edit_attributes():
        p = folder / f"crossbreed-{a}.png"
        grids.save_png(grids.crossbreed_grid(model, test, having(a, 1, 6), having(a, 0, 6), a), p, scale=2)
        paths.append(p)
    for i, j in PAIRS:
        if i in model.attr_names and j in model.attr_names:
            ki, kj = test.info.attribute_index(i), test.info.attribute_index(j)
            both = np.flatnonzero((attrs[:, ki] > 0.5) & (attrs[:, kj] > 0.5))
            neither = np.flatnonzero((attrs[:, ki] < 0.5) & (attrs[:, kj] < 0.5))
            a, b = rng.choice(both, 6, replace=False), rng.choice(neither, 6, replace=False)
            p = folder / f"swap-{i}+{j}.png"
            grids.save_png(grids.pair_swap_grid(model, test.images_at(a), test.images_at(b), [i, j]), p, scale=2)
            paths.append(p)
    for i, j in PAIRS[:2]:
        if i in model.attr_names and j in model.attr_names:
            base = test.images_at(having(i, 0, 1)[:1])
            ki, kj = test.info.attribute_index(i), test.info.attribute_index(j)
            ref_i = test.images_at(rng.choice(np.flatnonzero((attrs[:, ki] > 0.5) & (attrs[:, kj] < 0.5)), 1))
            ref_j = test.images_at(rng.choice(np.flatnonzero((attrs[:, kj] > 0.5) & (attrs[:, ki] < 0.5)), 1))
            p = folder / f"interpolation-{i}x{j}.png"
            grids.save_png(grids.interpolation_grid(model, base, ref_i, ref_j, i, j, steps=5), p, scale=2)
            paths.append(p)
    return paths


def summary(results: dict) -> list[str]:
    lines = []
    for row, r in results.items():
        c, m = r["cost"], r.get("metrics")
        if m is None:
            lines.append(f"\n### {row}: diverged — {c.get('failed')}")
            continue
        lines += [f"\n### {row} — {c['schedule']}, {c['steps']} steps, {c['train_s'] / 60:.1f} min ({c['steps_per_s']} steps/s), "
                  f"batch {c['batch_size']} per stream, pieces {c['piece_channels']} of {c['latent_channels']} channels",
                  f"reconstruction PSNR {m['psnr']:.2f} dB", "",
                  "| attribute | B2 add: success | closer (than input) | PSNR (recon; input) | identity (recon) | A2 remove: success "
                  "| closer (than input) | PSNR (recon; input) | identity (recon) | N | judge acc. |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        truth = []
        for a in c["attributes"]:
            s = m[a]
            cells = []
            for d in ("add", "remove"):
                vs_input = f" ({s[d + '.closer_input']:.3f})" if d + ".closer_input" in s else ""
                p_input = f"; {s[d + '.psnr_input']:.2f}" if d + ".psnr_input" in s else ""
                cells.append(f"{s[d + '.success']:.3f} | {s[d + '.closer']:.3f}{vs_input} | {s[d + '.psnr']:.2f} "
                             f"({s[d + '.psnr_reconstruction']:.2f}{p_input}) | {s[d + '.identity']:.3f} "
                             f"({s[d + '.identity_reconstruction']:.3f})")
            lines.append(f"| {a} | {cells[0]} | {cells[1]} | {s['n']} | {m['judge_accuracy'].get(a) or float('nan'):.3f} |")
            if "add.identity_truth" in s:
                truth.append(f"{a} {s['add.identity_truth']:.3f} / {s['remove.identity_truth']:.3f} (the truth's own identity "
                             f"{s['add.identity_of_truth']:.3f} / {s['remove.identity_of_truth']:.3f}), "
                             f"mean |change| {s['add.change']:.4f} / {s['remove.change']:.4f} (the truth's "
                             f"{s['add.change_truth']:.4f} / {s['remove.change_truth']:.4f})")
        if truth:
            lines += ["", "identity against the true counterfactual's reading, add / remove:", *(f"- {t}" for t in truth)]
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="runs/bench-dnagan")
    ap.add_argument("--rows", nargs="+", choices=list(ROWS), default=list(ROWS))
    ap.add_argument("--steps", type=int, default=STEPS, help="steps of the cyclic rows (joint: steps / n)")
    ap.add_argument("--reuse", action="store_true", help="keep trained rows (cost.json present); re-measure")
    ap.add_argument("--no-figures", action="store_true")
    ap.add_argument("--edit-output", metavar="MODE", default=None,
                    help="re-measure trained rows (implies --reuse, no figures) with edits returned as MODE "
                         "(decoded, residual, masked); kept in results.json as ROW@MODE")
    ap.add_argument("--strength", type=float, default=1.0, metavar="V",
                    help="re-measure trained rows (implies --reuse, no figures) with each child's piece moved V of the "
                         "way to the swap (1: the paper's swap; 2: as far again); kept as ROW@MODE@sV")
    ap.add_argument("--seed", type=int, default=0, help="weights and data order (the rows' numbers in results §12: 0)")
    args = ap.parse_args()
    if args.strength <= 0:
        ap.error(f"--strength {args.strength}: must be > 0 (1 is the paper's swap)")
    remeasure = bool(args.edit_output) or args.strength != 1.0
    if remeasure:
        args.reuse = args.no_figures = True
    tag = ""  # the results.json key's suffix for a re-measure: @MODE (the run's own: @own), then @sV
    if remeasure:
        tag = f"@{args.edit_output or 'own'}" + (f"@s{args.strength:g}" if args.strength != 1.0 else "")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    train = fk.data.load("faces", "train")
    preset = fk.models.build("dna-gan", train, preset="fast")
    n_attr, preset_schedule = len(preset.attr_names), preset.config.schedule
    results_file = out / "results.json"
    results = json.loads(results_file.read_text()) if results_file.is_file() else {}
    for row in args.rows:
        overrides = ROWS[row]
        main = results.get("main", {}).get("cost", {})
        if row == preset_schedule and main.get("steps") == args.steps and not overrides.keys() - {"schedule"}:
            results[row] = results["main"]  # the preset's own schedule at the same steps: the main run
            continue
        if remeasure and not (out / row / "cost.json").is_file():
            ap.error(f"--edit-output and --strength re-measure trained rows; {out / row} has none (train it first)")
        run, cost = train_row(row, overrides, row_steps(row, args.steps, n_attr), out, args.reuse, args.seed)
        entry = {"cost": cost}
        row += tag
        if "failed" not in cost:
            entry["metrics"] = measure(run, args.edit_output, args.strength)
            if not args.no_figures:  # main's in OUT/figures (linked from results §12), the others' in a folder each
                entry["figures"] = [str(p) for p in figures(run, out / "figures" / ("" if row == "main" else row))]
        results[row] = entry
        results_file.write_text(json.dumps(results, indent=1))
    shown = [r + tag for r in args.rows]
    print("\n".join(summary({r: results[r] for r in shown if r in results})))


if __name__ == "__main__":
    main()
