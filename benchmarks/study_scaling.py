"""Study runner scaling (issue 23, must-show 2): 8 short runs one after another in-process vs on
a local Ray with 2 concurrent 1-thread runs, on 2 cores.

Each run: ``ae`` on sklearn-digits, ``--steps`` steps (batch 32, no loader workers), then psnr on
the test split; 8 seeds. Both studies start from an empty directory. Recorded:

* wall time of each study, and their ratio (target ≤ 0.6);
* Ray's per-run overhead: ``ray.init`` of a local instance, and the mean round trip of a trivial
  task (submission, scheduling, a worker, the result back) — measured on their own, so neither
  is hidden inside training time (target ≤ 2 s per run).

    python benchmarks/study_scaling.py --steps 400 --out runs/bench-study-scaling
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import yaml

from factorkit.study import aggregate, runner
from factorkit.study import load as load_study


def spec(path: Path, steps: int) -> Path:
    path.write_text(yaml.safe_dump({
        "name": "scaling", "data": "sklearn-digits", "steps": steps, "seeds": list(range(8)), "metrics": ["psnr"],
        "cpus_per_run": 1,
        "runs": [{"method": "ae", "set": {"train.batch_size": 32, "train.num_workers": 0}}]}))
    return path


def timed_study(spec_path: Path, out: Path, use_ray: bool) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    t = time.perf_counter()
    study = load_study(spec_path)
    results = runner.run_study(study, out, use_ray=use_ray, progress=False)
    aggregate.write(study, out)
    wall = time.perf_counter() - t
    inside = [r["seconds"] for r in results if "seconds" in r]
    return {"wall_s": round(wall, 2), "states": sorted({r["state"] for r in results}),
            "run_seconds": inside, "sum_run_s": round(sum(inside), 2)}


def ray_overhead(n: int = 8) -> dict:
    import ray

    t = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    init_s = time.perf_counter() - t

    @ray.remote(num_cpus=1)
    def noop(i):
        return i

    ray.get(noop.remote(-1))  # the first task starts a worker process
    first_s = time.perf_counter() - t - init_s
    t = time.perf_counter()
    for i in range(n):
        ray.get(noop.remote(i))
    per_task = (time.perf_counter() - t) / n
    ray.shutdown()
    return {"init_s": round(init_s, 2), "first_task_s": round(first_s, 2), "task_round_trip_s": round(per_task, 4)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--out", type=Path, default=Path("runs/bench-study-scaling"))
    a = p.parse_args()
    a.out.mkdir(parents=True, exist_ok=True)
    spec_path = spec(a.out / "scaling.yaml", a.steps)
    seq = timed_study(spec_path, a.out / "sequential", use_ray=False)
    print("sequential", seq, flush=True)
    par = timed_study(spec_path, a.out / "ray", use_ray=True)
    print("ray", par, flush=True)
    over = ray_overhead()
    print("ray overhead", over, flush=True)
    result = {"steps": a.steps, "sequential": seq, "ray": par, "ratio": round(par["wall_s"] / seq["wall_s"], 3),
              "overhead": over,
              "overhead_per_run_s": round((over["init_s"] + over["first_task_s"]) / 8 + over["task_round_trip_s"], 3)}
    (a.out / "scaling.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
