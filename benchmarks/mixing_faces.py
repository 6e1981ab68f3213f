"""Mixing autoencoder (Hu et al.) and its Table-2 ablations on faces and shapes2d (issue 6).

For each dataset, one run per row of the paper's Table 2 (AE, C+G, AE+C+G, MIX, MIX+C, MIX+G,
MIX+C+G) plus the `mixing-ae` baseline (one chunk of the same total size) and Random features —
same steps, fast preset — then:

1. nn-map (methods.md §6.3): L2 nearest-neighbour mAP per (chunk, ground-truth label), best chunk
   per label, averaged; labels = identity factors + attributes (faces) or the five factors
   (shapes2d); the best-chunk table says which chunk carries which factor;
2. attr-linear on faces (the protocol of Table 3) for the full model vs the AE baseline;
3. swap grids (rows = a, columns = b, one grid per chunk) and a retrieval strip per chunk;
4. training cost per row (wall time and steps/s on this machine).

    python benchmarks/mixing_faces.py --steps 1000 --out runs/bench-mixing
    python benchmarks/mixing_faces.py --datasets shapes2d --steps 600 --rows AE MIX+G MIX+C+G \
        --set r1_gamma=10 --set lambda_gan=0.1 --out runs/bench-mixing-stab

``--set KEY=VALUE`` applies a model option to every ``mixing`` row (not to ``mixing-ae``).

Results: ``OUT/results.json`` and a markdown summary on stdout (copied into docs/results.md).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

import factorkit as fk
from factorkit.config import field_types, parse_value
from factorkit.metrics import attributes as A
from factorkit.metrics.evaluate import Settings, evaluate
from factorkit.metrics.evaluate import rows as _rows
from factorkit.metrics.registry import METRICS, attrs_are_factors
from factorkit.models.mixing import TERMS, Mixing
from factorkit.viz import grids

ROWS = list(TERMS) + ["mixing-ae"]


def parse_sets(items: list[str]) -> dict:
    types = field_types(Mixing.Config)
    out = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or key not in types:
            raise SystemExit(f"--set {item!r}: expected KEY=VALUE with KEY one of {', '.join(types)}")
        out[key] = parse_value(text, types[key], f"model.{key}")
    return out


def train_row(row: str, train, steps: int, out: Path, reuse: bool, seed: int = 0, overrides: dict | None = None) -> dict:
    done = out / "cost.json"
    if reuse and done.exists():
        return json.loads(done.read_text())
    if row == "mixing-ae":
        model = fk.models.build("mixing-ae", train, seed=seed)
    else:
        model = fk.models.build("mixing", train, seed=seed, terms=row, **(overrides or {}))
    t0 = time.perf_counter()
    fk.train(model, train, steps=steps, out=out, checkpoint_every=steps, image_every=steps, num_workers=1, seed=seed)
    wall = time.perf_counter() - t0
    cost = {"steps": steps, "wall_s": round(wall, 1), "steps_per_s": round(steps / wall, 2),
            "batch_size": model.train_overrides.get("batch_size")}
    done.write_text(json.dumps(cost))
    return cost


def labels_of(test, settings: Settings):
    rows = _rows(len(test), settings.num_test, settings.seed + 1)
    info = test.info
    f = test.factor_array()[rows]
    if info.attributes and not attrs_are_factors(info):
        return rows, np.concatenate([f, test.attribute_array()[rows].astype(np.int64)], 1), \
            [x.name for x in info.factors] + list(info.attributes)
    return rows, f, [x.name for x in info.factors]


def random_row(test, settings: Settings, num_chunks: int, chunk_size: int) -> dict:
    rows, labels, names = labels_of(test, settings)
    feats = np.random.default_rng(0).standard_normal((len(rows), num_chunks * chunk_size))
    chunks = {f"chunk{i}": slice(i * chunk_size, (i + 1) * chunk_size) for i in range(num_chunks)}
    r = A.nn_map(feats, labels, chunks=chunks, names=names, num_queries=METRICS["nn-map"].params["num_queries"], seed=settings.seed)
    return {f"nn-map.{k}": v for k, v in r.items() if not k.startswith("_") and not k.endswith(".chunk")}


@torch.no_grad()
def figures(model, test, prefix: str, figdir: Path) -> list[str]:
    written = []
    rng = np.random.default_rng(0)
    idx = rng.choice(len(test), 10, replace=False)
    a, b = test.images_at(idx[:4]), test.images_at(idx[4:10])
    for c in range(len(model.chunk_names())):
        p = grids.save_png(grids.swap_grid(model, a, b, [c]), figdir / f"{prefix}_swap_chunk{c}.png", scale=1)
        written.append(str(p))
    # retrieval: one query, the 8 nearest test images by each chunk (row = chunk)
    gallery_rows = np.sort(rng.choice(len(test), min(2000, len(test)), replace=False))
    gallery = test.images_at(gallery_rows)
    q = gallery[:1]
    strips = []
    for c in range(len(model.chunk_names())):
        idx_c, _ = model.retrieve(q, gallery, chunks=[c], k=9)
        strips.append(torch.cat([q, gallery[idx_c[0, 1:]]]))
    p = grids.save_png(grids.image_rows(strips), figdir / f"{prefix}_retrieval.png")
    written.append(str(p))
    return written


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--shapes-steps", type=int, default=None, help="steps on shapes2d (default: --steps)")
    p.add_argument("--datasets", nargs="+", default=["faces", "shapes2d"])
    p.add_argument("--rows", nargs="+", default=ROWS)
    p.add_argument("--out", type=Path, default=Path("runs/bench-mixing"))
    p.add_argument("--figures", type=Path, default=Path("docs/images"))
    p.add_argument("--reuse", action="store_true")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="model option for every mixing row, e.g. r1_gamma=10")
    a = p.parse_args()
    overrides = parse_sets(a.set)
    a.out.mkdir(parents=True, exist_ok=True)
    a.figures.mkdir(parents=True, exist_ok=True)
    settings = Settings()
    path = a.out / "results.json"
    results: dict = json.loads(path.read_text()) if a.reuse and path.exists() else {}
    for data in a.datasets:
        train, test = fk.data.load(data, "train"), fk.data.load(data, "test")
        steps = a.steps if data == "faces" else (a.shapes_steps or a.steps)
        res = results.setdefault(data, {"steps": steps, "rows": {}})
        res["overrides"] = overrides
        for row in a.rows:
            run = a.out / f"{data}-{row.replace('+', '_')}"
            print(f"== {data} {row}: {steps} steps", flush=True)
            cost = train_row(row, train, steps, run, a.reuse, overrides=overrides)
            model = fk.load(run)
            metrics = ["nn-map"] + (["attr-linear"] if data == "faces" and row in ("MIX+C+G", "mixing-ae", "AE") else [])
            t = time.perf_counter()
            rec = evaluate(model, test, metrics=metrics, train_dataset=train, settings=settings, out=run / "metrics.json")
            entry = {"cost": cost, "metrics": rec["metrics"], "table": rec["details"].get("nn-map.table"),
                     "chunks": rec["details"].get("nn-map.chunks"), "evaluate_s": round(time.perf_counter() - t, 1)}
            if row == "MIX+C+G":
                entry["figures"] = figures(model, test, f"mixing_{data}", a.figures)
            res["rows"][row] = entry
            print(f"   {cost['steps_per_s']} steps/s, {cost['wall_s']} s; nn-map {rec['metrics']['nn-map.mean']:.3f}", flush=True)
            path.write_text(json.dumps(results, indent=1))
        c = fk.models.build("mixing", train).config
        res["rows"]["Random"] = {"metrics": random_row(test, settings, c.num_chunks, c.chunk_size)}
        res["labels"] = labels_of(test, settings)[2]
        path.write_text(json.dumps(results, indent=1))
    print(markdown(results))


def markdown(results: dict) -> str:
    out = []
    for data, res in results.items():
        names = res["labels"]
        order = ["Random"] + [r for r in ROWS if r in res["rows"]]
        sets = ", ".join(f"{k}={v}" for k, v in res.get("overrides", {}).items())
        out += [f"### nn-map on {data} ({res['steps']} steps per row; best chunk per label)"
                + (f"; mixing rows with {sets}" if sets else ""), "",
                "| row | " + " | ".join(names) + " | avg | steps/s | wall |", "|---|" + "---|" * (len(names) + 3)]
        for row in order:
            e = res["rows"][row]
            m = e["metrics"]
            cost = e.get("cost")
            cells = " | ".join(f"{m[f'nn-map.{n}']:.3f}" for n in names)
            tail = f"{cost['steps_per_s']} | {cost['wall_s'] / 60:.1f} min" if cost else "— | —"
            out.append(f"| {row} | {cells} | **{m['nn-map.mean']:.3f}** | {tail} |")
        full = res["rows"].get("MIX+C+G")
        if full and full.get("table"):
            table = np.asarray(full["table"])
            out += ["", f"Which chunk carries which label (MIX+C+G on {data}; mAP of each chunk, best in bold):", "",
                    "| chunk | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
            best = table.argmax(0)
            for ci, chunk in enumerate(full["chunks"]):
                cells = [f"**{table[ci, j]:.3f}**" if best[j] == ci else f"{table[ci, j]:.3f}" for j in range(len(names))]
                out.append(f"| {chunk} | " + " | ".join(cells) + " |")
        if data == "faces":
            out += ["", "attr-linear on faces (Table 3 protocol; accuracy, majority class in brackets):", ""]
            for row in ("MIX+C+G", "AE", "mixing-ae"):
                m = res["rows"].get(row, {}).get("metrics", {})
                keys = sorted(k for k in m if k.startswith("attr-linear.") and k.count(".") == 1 and not k.endswith("mean"))
                if keys:
                    out.append(f"- {row}: mean {m['attr-linear.mean']:.3f} ({m['attr-linear.majority_mean']:.3f}); " + ", ".join(
                        f"{k.split('.', 1)[1]} {m[k]:.3f} ({m[k + '.majority']:.3f})" for k in keys))
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    main()
