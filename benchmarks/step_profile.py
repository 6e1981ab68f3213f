"""Where a fast-preset training step's time goes on this machine (issue 16 §4, the "before").

For mddae and mixing on faces (fast preset, batch 32): the time to render one batch of training
faces, and one optimisation step of the model on a fixed batch (forward, backward, Adam), with 1
and 2 torch threads and with channels_last. Each is the median over ``--repeats`` after 3 warm-up
steps, one configuration at a time.

    python benchmarks/step_profile.py --repeats 20
    python benchmarks/step_profile.py --repeats 20 --compile    # 2 threads, torch.compile on the networks

``--compile`` wraps every direct sub-network of the model (encoder, decoder, discriminator, …) in
``torch.compile`` (inductor, CPU) and times the same step, eager beside it; the compile time of
the warm-up steps is printed separately.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

import factorkit as fk
from factorkit.train.distributed import Dist
from factorkit.train.trainer import Players


def median_time(fn, repeats: int) -> float:
    for _ in range(3):
        fn()
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--compile", action="store_true", help="time torch.compile'd networks against eager (2 threads)")
    a = p.parse_args()
    ds = fk.data.load("faces", "train")
    rng = np.random.default_rng(0)
    rows = lambda: np.sort(rng.choice(len(ds), a.batch_size, replace=False))  # noqa: E731
    print("| what | threads | channels_last | ms per step | steps/s |\n|---|---|---|---|---|")
    for threads in (1, 2):
        torch.set_num_threads(threads)
        ms = median_time(lambda: ds.get_batch(rows()), a.repeats) * 1000
        print(f"| render a batch of {a.batch_size} faces | {threads} | — | {ms:.1f} | — |", flush=True)
    batch = ds.get_batch(rows())
    if a.compile:
        for name in ("mddae", "mixing"):
            for comp in (False, True):
                t0 = time.perf_counter()
                ms = time_step(name, ds, batch, 2, False, a.repeats, compile_nets=comp)
                label = "torch.compile" if comp else "eager"
                print(f"| {name} step (fast preset), {label} | 2 | no | {ms:.1f} | {1000 / ms:.2f} | "
                      f"total incl. warm-up {time.perf_counter() - t0:.0f} s |", flush=True)
        return
    for name in ("mddae", "mixing"):
        for threads in (1, 2):
            for cl in (False, True):
                ms = time_step(name, ds, batch, threads, cl, a.repeats)
                print(f"| {name} step (fast preset) | {threads} | {'yes' if cl else 'no'} | {ms:.1f} | {1000 / ms:.2f} |", flush=True)


def time_step(name: str, ds, batch: dict, threads: int, channels_last: bool, repeats: int,
              compile_nets: bool = False) -> float:
    """Median ms of one optimisation step of ``name`` (fast preset) on a fixed batch."""
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = fk.models.build(name, ds, preset="fast")
    model.train()
    if compile_nets:
        for child, module in list(model.named_children()):
            if any(True for _ in module.parameters()):
                setattr(model, child, torch.compile(module))
    b = dict(batch)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
        b["image"] = b["image"].contiguous(memory_format=torch.channels_last)
    opts = model.configure_optimizers()
    players = Players(opts, {n: None for n in opts}, Dist(), lambda: b)
    state = {"step": 0}

    def step():
        model.train_step(b, state["step"], players)
        state["step"] += 1

    return median_time(step, repeats) * 1000

if __name__ == "__main__":
    main()
