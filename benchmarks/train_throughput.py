"""Training steps/s through ``factorkit.train`` on faces, before and after the pre-rendered face
cache (issue 16 §4, must-show 5), for the mddae and mixing fast presets.

    python benchmarks/train_throughput.py --steps 300

"before": live renders in one DataLoader worker (the demo's old setting, ``num_workers=1``,
``prerender=False``) and the default two workers; "after": the uint8 cache
(``train.prerender``), read in the main process (``num_workers=0``). The cache is built before
the timed runs (its one-off cost is printed separately). Checkpoints and image grids are off;
logging every 10 steps is on. One run at a time, nothing else running.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import factorkit as fk

SETTINGS = {  # label → (num_workers, prerender)
    "before: live renders, 1 worker": (1, False),
    "before: live renders, 2 workers (default)": (2, False),
    "after: pre-rendered cache, main process": (0, True),
}


def steps_per_s(model_name: str, steps: int, workers: int, prerender: bool) -> float:
    train = fk.data.load("faces", "train")
    model = fk.models.build(model_name, train, seed=0)
    with tempfile.TemporaryDirectory() as d:
        t = time.perf_counter()
        fk.train(model, train, steps=steps, out=f"{d}/run", checkpoint_every=0, image_every=0, num_workers=workers,
                 prerender=prerender, progress=False)
        return steps / (time.perf_counter() - t)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--models", default="mddae,mixing")
    a = p.parse_args()
    t = time.perf_counter()
    fk.data.load("faces", "train").prerender()
    print(f"pre-render of the training split (or reading the existing cache): {time.perf_counter() - t:.1f} s")
    print("| model (fast preset, batch 32) | data path | steps/s |\n|---|---|---|")
    for name in a.models.split(","):
        for label, (workers, prerender) in SETTINGS.items():
            print(f"| {name} | {label} | {steps_per_s(name, a.steps, workers, prerender):.2f} |", flush=True)


if __name__ == "__main__":
    main()
