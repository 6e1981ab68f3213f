"""Images per second of the procedural datasets: rendering on one core, and through the
training DataLoader (the trainer's sampler and collate) with 2 worker processes.

    python benchmarks/data_throughput.py [--seconds 10]

Target (issue "Foundation"): ≥ 1,000 faces/s through the loader, so data is never the
bottleneck of a CPU preset.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
from torch.utils.data import DataLoader

import factorkit as fk
from factorkit.data.base import collate
from factorkit.train.trainer import InfiniteBatchSampler, _worker_init


def one_core(ds, batch: int, seconds: float) -> float:
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    ds.get_batch(rng.integers(0, len(ds), batch))  # warm-up
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        ds.get_batch(rng.integers(0, len(ds), batch))
        n += batch
    return n / (time.perf_counter() - t0)


def loader(ds, batch: int, workers: int, seconds: float) -> float:
    dl = DataLoader(ds, batch_sampler=InfiniteBatchSampler(len(ds), batch, seed=0), num_workers=workers,
                    collate_fn=collate, worker_init_fn=_worker_init, prefetch_factor=4)
    it = iter(dl)
    for _ in range(2 * workers):  # warm-up: workers started, queues filled
        next(it)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        n += next(it)["image"].shape[0]
    rate = n / (time.perf_counter() - t0)
    del it
    return rate


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--batch", type=int, default=64)
    args = ap.parse_args()
    results = {}
    for name in ("shapes2d", "faces"):
        ds = fk.data.load(name, "train")
        results[name] = {
            "render_one_core_img_s": round(one_core(ds, args.batch, args.seconds)),
            "loader_2_workers_img_s": round(loader(ds, args.batch, 2, args.seconds)),
        }
        print(name, results[name], flush=True)
    print(json.dumps({"batch": args.batch, "seconds": args.seconds, **results}))


if __name__ == "__main__":
    main()
