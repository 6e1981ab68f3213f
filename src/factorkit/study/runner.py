"""Running a study: each run trains and evaluates into an ordinary run directory
``DIR/runs/NAME``, one Ray task per run (or one after another in this process without Ray).

Why Ray tasks rather than Ray Tune trials: a study is a fixed list of independent runs, each
already checkpointed and resumed exactly by factorkit's trainer; Tune would add its own trial
directories, checkpointing and schedulers that duplicate (and would fight) the trainer's. A task
per run needs only ``num_cpus`` and works the same on a laptop and a cluster.

Resume is the default. On a rerun of the same spec into the same ``DIR``:

* a run whose ``study.json`` says ``done`` (and whose metrics.json exists) is skipped, unless the
  spec's ``evaluate`` settings changed since it was scored: then it is only evaluated again;
* a run with checkpoints but no final weights continues from its newest checkpoint (the trainer's
  exact resume); one with final weights but no scores is only evaluated;
* a ``failed`` run is retried from where it got to.

A run directory whose saved config differs from what the spec now asks for is refused before
anything runs, naming every differing run and key. A failure is recorded (``study.json``: state
``failed`` and the error's first line; ``error.txt``: the traceback); the other runs go on.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..files import atomic_write_text
from .spec import Run, Study

STATE_FILE = "study.json"


def _flatten(d: dict, prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def config_differences(saved: dict, planned: dict) -> list[str]:
    a, b = _flatten(saved), _flatten(planned)
    return [f"{k}: {a.get(k)!r} → {b.get(k)!r}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


def check_existing(study: Study, runs_dir: Path) -> None:
    """Refuse a spec that would change runs already in ``runs_dir`` (nothing is mixed or overwritten)."""
    import yaml

    changed = []
    for run in study.runs:
        path = runs_dir / run.name / "config.yaml"
        if path.is_file():
            saved = yaml.safe_load(path.read_text())
            diff = config_differences(saved, run.config_dict())
            if diff:
                changed.append(f"{run.name} ({'; '.join(diff[:3])}{' …' if len(diff) > 3 else ''})")
    if changed:
        raise UsageError(f"the spec changed {len(changed)} existing run(s) in {runs_dir}: {', '.join(changed)}; "
                         "use another DIR, or restore the spec")


def read_state(run_dir: Path) -> dict:
    try:
        return json.loads((run_dir / STATE_FILE).read_text())
    except (OSError, ValueError):
        return {}


def _finished(run_dir: Path, evaluate: dict | None = None) -> bool:
    """Done and scored with the same evaluation settings (``evaluate``: the spec's, None = any)."""
    state = read_state(run_dir)
    same = evaluate is None or state.get("evaluate", {}) == evaluate
    return state.get("state") == "done" and same and (run_dir / "metrics.json").is_file()


def _write_state(run_dir: Path, **state: Any) -> None:
    atomic_write_text(run_dir / STATE_FILE, json.dumps(state, indent=1))


def execute(run: Run, run_dir: str, metrics: list[str] | None, threads: int, evaluate_with: dict | None = None) -> dict:
    """Train (or resume) and evaluate one run; never raises: a failure is recorded and returned.
    ``evaluate_with``: the spec's overrides of evaluate's Settings (recorded in study.json)."""
    import torch

    torch.set_num_threads(threads)
    path = Path(run_dir)
    evaluate_with = dict(evaluate_with or {})
    if _finished(path, evaluate_with):
        return {"name": run.name, "state": "skipped"}
    t = time.perf_counter()
    resumed = False
    try:
        from ..api import load, train
        from ..data.registry import load as load_data
        from ..metrics.evaluate import Settings, evaluate
        from ..models.registry import build

        cfg = run.config
        path.mkdir(parents=True, exist_ok=True)
        trained = (path / "model.safetensors").is_file()
        resumed = not trained and (path / "checkpoints").is_dir() and any((path / "checkpoints").glob("step-*.json"))
        _write_state(path, state="resumed" if resumed else "running", started=time.time())
        if not trained:
            dataset = load_data(cfg.data_name, "train", root=cfg.data_root, options=cfg.data)
            model = build(cfg.model_name, dataset, preset=cfg.preset, seed=cfg.train.seed, config=cfg.model)
            train(model, dataset, out=path, resume=resumed, progress=False, config=cfg)
        model = load(path)
        test = load_data(cfg.data_name, "test", root=cfg.data_root, options=cfg.data)
        evaluate(model, test, metrics=metrics, settings=Settings(**evaluate_with), out=path / "metrics.json")
        seconds = round(time.perf_counter() - t, 1)
        _write_state(path, state="done", seconds=seconds, resumed=resumed, evaluate=evaluate_with,
                     niceness=os.nice(0))
        return {"name": run.name, "state": "done", "seconds": seconds, "resumed": resumed}
    except Exception as exc:  # recorded; the other runs go on
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        message = f"{type(exc).__name__}: {first}"
        atomic_write_text(path / "error.txt", traceback.format_exc())
        _write_state(path, state="failed", error=message, seconds=round(time.perf_counter() - t, 1))
        return {"name": run.name, "state": "failed", "error": message}


def _metrics(study: Study, run: Run) -> list[str] | None:
    chosen = study.metrics_for(run.entry)
    return list(chosen) if chosen is not None else None


def _check_reachable(address: str) -> None:
    """A HOST:PORT that nothing answers on is named at once (Ray itself retries for minutes)."""
    import socket

    host, _, port = address.rpartition(":")
    if address == "auto" or "://" in address or not host or not port.isdigit():
        return  # Ray's own forms ("auto", "ray://…"): Ray resolves them
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as exc:
        raise UsageError(f"--address {address}: could not join a Ray cluster there (nothing answers: "
                         f"{exc.strerror or exc}); start one with `ray start --head`, or drop --address to run on a "
                         "local Ray") from None


def ray_available() -> bool:
    return importlib.util.find_spec("ray") is not None


class _Progress:
    """One live table (run, state, step, steps/s, ETA) on a terminal; plain lines otherwise."""

    def __init__(self, runs: list[Run], runs_dir: Path, enabled: bool) -> None:
        from rich.console import Console

        self.runs, self.runs_dir = runs, runs_dir
        self.console = Console(stderr=True)
        self.live = None
        self.state = {r.name: "queued" for r in runs}
        self.enabled = enabled
        if enabled and self.console.is_terminal:
            from rich.live import Live

            self.live = Live(self._table(), console=self.console, refresh_per_second=2)
            self.live.start()

    def _step(self, run: Run) -> tuple[int | None, float | None]:
        log = self.runs_dir / run.name / "log.jsonl"
        try:
            last = log.read_text().strip().splitlines()[-1]
            row = json.loads(last)
            return row.get("step"), row.get("steps_per_s")
        except (OSError, ValueError, IndexError):
            return None, None

    def _table(self):
        from rich.table import Table

        t = Table(title="study")
        for col in ("run", "state", "step", "steps/s", "ETA"):
            t.add_column(col)
        for r in self.runs:
            step, rate = self._step(r) if self.state[r.name] in ("running", "resumed") else (None, None)
            total = r.config.train.steps
            eta = f"{(total - step) / rate:.0f} s" if step is not None and rate else ""
            t.add_row(r.name, self.state[r.name], f"{step}/{total}" if step is not None else "",
                      f"{rate:.2f}" if rate else "", eta)
        return t

    def set(self, name: str, state: str, detail: str = "") -> None:
        self.state[name] = state
        if self.live is not None:
            self.live.update(self._table())
        elif self.enabled:
            print(f"study: {name}: {state}{(' — ' + detail) if detail else ''}", file=sys.stderr, flush=True)

    def refresh(self) -> None:
        """Runs that a worker has started say so in their state file (Ray queues the rest)."""
        for name, state in self.state.items():
            if state == "queued":
                now = read_state(self.runs_dir / name).get("state")
                if now in ("running", "resumed"):
                    self.set(name, now)
        if self.live is not None:
            self.live.update(self._table())

    def close(self) -> None:
        if self.live is not None:
            self.live.stop()


def run_study(study: Study, out: Path, address: str | None = None, cpus_per_run: int | None = None,
              use_ray: bool | None = None, progress: bool = True) -> list[dict]:
    """Execute every run of ``study`` into ``out/runs`` (Ray when available, else in turn)."""
    runs_dir = out / "runs"
    check_existing(study, runs_dir)
    cpus = cpus_per_run or study.cpus_per_run
    ray_ok = ray_available() if use_ray is None else use_ray
    address = address or os.environ.get("RAY_ADDRESS")
    if address and not ray_ok:
        raise UsageError("--address needs Ray: pip install 'factorkit[study]'" if use_ray is None else
                         "--address and --no-ray: choose one")
    if address:
        _check_reachable(address)
    runs_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "spec.json", json.dumps({"name": study.name, "source": study.source,
                                                     "runs": [r.name for r in study.runs]}, indent=1))
    bar = _Progress(study.runs, runs_dir, progress)
    results: list[dict] = []
    try:
        if not ray_ok:
            why = "--no-ray" if use_ray is False else "Ray is not installed (pip install 'factorkit[study]')"
            n = len(study.runs)
            print(f"study: {why}: {'the 1 run goes' if n == 1 else f'the {n} runs go one after another'} "
                  "in this process", file=sys.stderr, flush=True)
            for run in study.runs:
                if not _finished(runs_dir / run.name, study.evaluate):
                    bar.set(run.name, "running")
                result = execute(run, str(runs_dir / run.name), _metrics(study, run), cpus, study.evaluate)
                results.append(result)
                bar.set(run.name, result["state"], result.get("error", ""))
        else:
            results = _run_ray(study, runs_dir, address, cpus, bar)
    finally:
        bar.close()
    return results


def _run_ray(study: Study, runs_dir: Path, address: str | None, cpus: int, bar: _Progress) -> list[dict]:
    todo = [run for run in study.runs if not _finished(runs_dir / run.name, study.evaluate)]
    for run in study.runs:
        if run not in todo:
            bar.set(run.name, "skipped")
    results = [{"name": run.name, "state": "skipped"} for run in study.runs if run not in todo]
    if not todo:  # nothing to train: Ray is not even started
        return results
    import ray

    started_here = not ray.is_initialized()
    if started_here:
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "logging_level": "ERROR"}
        if address:
            kwargs["address"] = address
        else:
            kwargs["num_cpus"] = os.cpu_count() or 1
            # Ray starts its workers at niceness 15 unless told otherwise. A run with several torch
            # threads then waits at every parallel region for the thread that shares a core with
            # any other process: 1.1 steps/s instead of hundreds for a digits autoencoder beside one
            # busy benchmark (results §15). A local Ray started here runs its workers at the
            # driver's priority; RAY_worker_niceness set by the user is kept.
            os.environ.setdefault("RAY_worker_niceness", "0")
        try:
            ray.init(**kwargs)
        except ConnectionError as exc:
            first = (str(exc).strip().splitlines() or ["no answer"])[0]
            raise UsageError(f"--address {address}: could not join a Ray cluster there ({first}); start one with "
                             "`ray start --head`, or drop --address to run on a local Ray") from None
    try:
        remote = ray.remote(num_cpus=cpus, max_retries=0)(execute)
        pending = {remote.remote(run, str(runs_dir / run.name), _metrics(study, run), cpus, study.evaluate): run
                   for run in todo}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
            bar.refresh()
            for ref in done:
                run = pending.pop(ref)
                try:
                    result = ray.get(ref)
                except Exception as exc:  # the worker died (killed, out of memory): recorded as failed
                    result = {"name": run.name, "state": "failed", "error": f"{type(exc).__name__}: worker lost"}
                    _write_state(runs_dir / run.name, state="failed", error=result["error"])
                results.append(result)
                bar.set(run.name, result["state"], result.get("error", ""))
        return results
    finally:
        if started_here:
            ray.shutdown()
