"""Trainer overhead: ``ae`` on shapes2d, batch 64, through ``factorkit``'s Trainer vs the same
forward/backward/step in a bare loop fed by the same DataLoader (same sampler, workers, collate).

    python benchmarks/trainer_overhead.py [--steps 300] [--repeats 3]

Both sides run the same number of steps from the same initial weights; the trainer side includes
everything it does (log.jsonl every 10 steps, TensorBoard scalars, NaN checks, the final
checkpoint and model.safetensors). Runs alternate to spread machine noise; medians reported.
Target (issue "Foundation"): overhead ≤ 5 %.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time

import torch
from torch.utils.data import DataLoader

import factorkit as fk
from factorkit.data.base import collate
from factorkit.models.ae import reconstruction_loss
from factorkit.train.trainer import InfiniteBatchSampler, _worker_init


def bare(ds, steps: int, batch: int, workers: int) -> float:
    model = fk.models.build("ae", ds, seed=0)
    opt = model.configure_optimizers()["autoencoder"]
    t0 = time.perf_counter()
    dl = DataLoader(ds, batch_sampler=InfiniteBatchSampler(len(ds), batch, seed=0), num_workers=workers,
                    collate_fn=collate, worker_init_fn=_worker_init, prefetch_factor=4,
                    generator=torch.Generator().manual_seed(0))
    it = iter(dl)
    for _ in range(steps):
        x = next(it)["image"]
        loss = reconstruction_loss(model.decoder(model.encoder(x)), x, "bce")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    del it
    return time.perf_counter() - t0


def trainer(ds, steps: int, batch: int, workers: int) -> float:
    model = fk.models.build("ae", ds, seed=0)
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        fk.train(model, ds, steps=steps, out=f"{d}/run", batch_size=batch, num_workers=workers,
                 checkpoint_every=0, image_every=0, log_every=10, progress=False)
        return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    ds = fk.data.load("shapes2d", "train")
    bare(ds, 10, args.batch, args.workers)  # warm caches / allocator
    t_bare, t_trainer = [], []
    for r in range(args.repeats):
        t_bare.append(bare(ds, args.steps, args.batch, args.workers))
        t_trainer.append(trainer(ds, args.steps, args.batch, args.workers))
        print(f"repeat {r}: bare {t_bare[-1]:.2f}s  trainer {t_trainer[-1]:.2f}s", flush=True)
    b, t = statistics.median(t_bare), statistics.median(t_trainer)
    print(json.dumps({
        "steps": args.steps, "batch": args.batch, "workers": args.workers, "threads": torch.get_num_threads(),
        "bare_s": round(b, 2), "trainer_s": round(t, 2),
        "bare_steps_s": round(args.steps / b, 2), "trainer_steps_s": round(args.steps / t, 2),
        "overhead_pct": round(100 * (t - b) / b, 2),
    }))


if __name__ == "__main__":
    main()
