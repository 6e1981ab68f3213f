"""The one training loop every model uses.

The model owns the maths (``configure_optimizers``, ``train_step``); the trainer owns
everything else: device and AMP, data order, the progress bar, ``log.jsonl``, TensorBoard,
checkpoints every N steps, exact resume, NaN/inf detection and multi-process training.
"""

from __future__ import annotations

import json
import math
import random
import sys
import time
import warnings
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Sampler

from ..config import RunConfig
from ..data.base import FactorDataset, collate
from ..errors import NonFiniteLoss, UsageError
from . import checkpoint as ckpt
from .distributed import Dist

Tensor = torch.Tensor


# --- data order ----------------------------------------------------------------------------------


class InfiniteBatchSampler(Sampler):
    """Endless, resumable batches: epoch ``e`` is ``randperm(n)`` seeded by ``(seed, e)``; batch
    ``b`` overall is position ``b mod batches_per_epoch`` of epoch ``b // batches_per_epoch``.
    With several processes each global batch of ``batch_size × world`` indices is cut into one
    slice per rank. Starting at ``start`` reproduces exactly the batches an uninterrupted run
    would have drawn next."""

    def __init__(self, n: int, batch_size: int, seed: int, rank: int = 0, world: int = 1, start: int = 0) -> None:
        self.n, self.batch_size, self.seed = n, batch_size, seed
        self.rank, self.world, self.start = rank, world, start
        self.global_batch = batch_size * world
        if n < self.global_batch:
            raise UsageError(
                f"the dataset split has {n} images, fewer than one batch of {self.global_batch}; "
                "lower --batch-size"
            )
        self.per_epoch = n // self.global_batch

    def _perm(self, epoch: int) -> Tensor:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(self.n, generator=g)

    def __iter__(self):
        b = self.start
        epoch, perm = -1, None
        while True:
            e, pos = divmod(b, self.per_epoch)
            if e != epoch:
                epoch, perm = e, self._perm(e)
            lo = pos * self.global_batch + self.rank * self.batch_size
            yield perm[lo : lo + self.batch_size].tolist()
            b += 1

    def __len__(self) -> int:  # DataLoader asks; the stream is endless
        return sys.maxsize


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)


# --- the `opt` object models see ----------------------------------------------------------------


class Players:
    """Passed to ``model.train_step`` as ``opt``.

    ``opt.step(name, loss)``: zero that player's gradients, back-propagate ``loss`` into that
    player's parameters only (``backward(inputs=…)``: no other player's gradients are touched),
    AMP-unscale, average gradients across processes, check for NaN/inf, step. ``opt.next_batch()``
    draws one more batch (for methods that re-sample data per player)."""

    def __init__(self, model, optimizers, scalers, dist: Dist, fetch) -> None:
        self.model = model
        self.optimizers = optimizers
        self.scalers = scalers
        self.dist = dist
        self._fetch = fetch
        self.params = {
            name: [p for g in o.param_groups for p in g["params"] if p.requires_grad] for name, o in optimizers.items()
        }
        self.current_step = 0
        self.counts = {name: 0 for name in optimizers}

    def step(self, name: str, loss: Tensor, retain_graph: bool = False) -> None:
        if name not in self.optimizers:
            raise KeyError(f"no optimizer named {name!r}; configure_optimizers returned {list(self.optimizers)}")
        if not bool(torch.isfinite(loss.detach()).all()):
            raise NonFiniteLoss(
                f"loss of player {name!r} is {float(loss.detach()):.4g} at step {self.current_step}"
            )
        opt, scaler, params = self.optimizers[name], self.scalers[name], self.params[name]
        for p in params:
            p.grad = None
        if scaler is not None:
            scaler.scale(loss).backward(inputs=params, retain_graph=retain_graph)
        else:
            loss.backward(inputs=params, retain_graph=retain_graph)
        self.dist.average_gradients(params)
        if scaler is not None:
            scaler.step(opt)
            scaler.update()
        else:
            opt.step()
        self.counts[name] += 1

    def next_batch(self) -> dict[str, Tensor]:
        return self._fetch()

    def lr(self, name: str) -> float:
        return float(self.optimizers[name].param_groups[0]["lr"])


# --- helpers ---------------------------------------------------------------------------------------


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda: no CUDA device is available here; use --device cpu or auto")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def resolve_amp(amp: str, device: torch.device) -> torch.dtype | None:
    if amp == "off" or (amp == "auto" and device.type != "cuda"):
        return None
    if amp == "auto":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if amp == "bf16" else torch.float16


def rng_state() -> dict[str, Any]:
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def to_device(batch: dict[str, Tensor], device: torch.device) -> dict[str, Tensor]:
    nb = device.type == "cuda"
    return {k: (v.to(device, non_blocking=nb) if torch.is_tensor(v) else v) for k, v in batch.items()}


@dataclass
class RunResult:
    out: Path
    steps: int
    seconds: float
    losses: dict[str, float] = field(default_factory=dict)
    resumed_from: int | None = None
    steps_per_second: float = 0.0


# --- the trainer -------------------------------------------------------------------------------------


class Trainer:
    def __init__(
        self,
        model,
        dataset: FactorDataset,
        config: RunConfig,
        out: str | Path,
        resume: bool = False,
        progress: bool | None = None,
    ) -> None:
        self.model = model
        self.dataset = dataset
        self.config = config
        self.out = Path(out)
        self.resume = resume
        self.progress = progress

    # -------------------------------------------------------------------------------------------
    def fit(self) -> RunResult:
        tc = self.config.train
        want_cuda = tc.device == "cuda" or (tc.device == "auto" and torch.cuda.is_available())
        dist = Dist.from_env(want_cuda)
        try:
            return self._fit(dist)
        finally:
            dist.shutdown()

    def _fit(self, dist: Dist) -> RunResult:
        tc = self.config.train
        model = self.model
        device = resolve_device(tc.device, dist.local_rank)
        amp_dtype = resolve_amp(tc.amp, device)
        self.out = Path(dist.broadcast_object(str(self.out)))
        ckpt_dir = self.out / "checkpoints"

        model.to(device)
        model.train()
        optimizers = model.configure_optimizers()
        schedulers = model.configure_schedulers(optimizers)
        use_scaler = amp_dtype == torch.float16
        scalers = {n: (torch.amp.GradScaler("cuda") if use_scaler else None) for n in optimizers}

        start, consumed, elapsed0, resumed_from = 0, 0, 0.0, None
        if self.resume:
            found = ckpt.load_newest(ckpt_dir)
            if found is None:
                raise UsageError(
                    f"--resume: {self.out} has no complete checkpoint to resume from "
                    "(train without --resume to start a new run)"
                )
            step, tensors, meta = found
            self._restore(step, tensors, meta, optimizers, schedulers, scalers, dist)
            start, consumed, elapsed0, resumed_from = step, meta["batches"], meta.get("elapsed_s", 0.0), step
            if dist.main:  # --steps may have extended the run
                self.config.save(self.out / "config.yaml")
        else:
            if dist.main:
                if ckpt.list_checkpoints(ckpt_dir):
                    raise UsageError(
                        f"{self.out} already holds a run with checkpoints; pass --resume to continue it "
                        "or choose another --out"
                    )
                self.out.mkdir(parents=True, exist_ok=True)
                self.config.save(self.out / "config.yaml")
                ckpt.atomic_write_text(self.out / "dataset.json", json.dumps(model.info.to_dict(), indent=1))
            seed_everything(tc.seed + dist.rank)
            dist.broadcast_module(model)
        if tc.compile:
            for child in model.children():
                child.compile()

        if dist.main and self.resume:
            self._truncate_log(start)
        writer = self._tensorboard(start if self.resume else None) if dist.main else None

        sampler = InfiniteBatchSampler(len(self.dataset), tc.batch_size, tc.seed, dist.rank, dist.world, consumed)
        loader = DataLoader(
            self.dataset,
            batch_sampler=sampler,
            num_workers=tc.num_workers,
            collate_fn=collate,
            pin_memory=device.type == "cuda",
            worker_init_fn=_worker_init if tc.num_workers else None,
            prefetch_factor=4 if tc.num_workers else None,
            generator=torch.Generator().manual_seed(tc.seed),
        )
        batches = iter(loader)
        counter = {"consumed": consumed}

        def fetch() -> dict[str, Tensor]:
            counter["consumed"] += 1
            return to_device(next(batches), device)

        players = Players(model, optimizers, scalers, dist, fetch)
        autocast = (
            torch.autocast(device_type=device.type, dtype=amp_dtype) if amp_dtype is not None else nullcontext()
        )
        bar = _Progress(tc.steps, start, enabled=self._progress_enabled(dist))
        log_sums: Tensor | None = None
        log_names: list[str] = []
        log_count = 0
        t0 = time.perf_counter()
        t_window, steps_window = t0, 0
        last_losses: dict[str, float] = {}
        last_saved = start
        step = start
        try:
            for step in range(start, tc.steps):
                players.current_step = step
                batch = fetch()
                with autocast:
                    losses = model.train_step(batch, step, players)
                for s in schedulers.values():
                    s.step()
                dist.broadcast_buffers(model)
                names = list(losses)
                values = torch.stack([torch.as_tensor(v, device=device).detach().float() for v in losses.values()])
                if not bool(torch.isfinite(values).all()):
                    bad = [n for n, v in zip(names, values.tolist()) if not math.isfinite(v)]
                    raise NonFiniteLoss(f"loss {bad[0]!r} is {losses[bad[0]]!s} at step {step}")
                if log_sums is None or names != log_names:
                    log_sums, log_names, log_count = torch.zeros_like(values), names, 0
                log_sums += values
                log_count += 1
                done = step + 1
                steps_window += 1
                bar.update(done, last_losses)
                if done % tc.log_every == 0 or done == tc.steps:
                    now = time.perf_counter()
                    rate = steps_window / max(now - t_window, 1e-9)
                    t_window, steps_window = now, 0
                    last_losses = dict(zip(log_names, (log_sums / log_count).tolist()))
                    log_sums.zero_()
                    log_count = 0
                    if dist.main:
                        record = {
                            "step": done,
                            "elapsed_s": round(elapsed0 + now - t0, 3),
                            "steps_per_s": round(rate, 3),
                            "losses": last_losses,
                            "lr": {n: players.lr(n) for n in optimizers},
                        }
                        with open(self.out / "log.jsonl", "a") as fh:
                            fh.write(json.dumps(record) + "\n")
                        if writer is not None:
                            for k, v in last_losses.items():
                                writer.add_scalar(f"loss/{k}", v, done)
                            writer.add_scalar("perf/steps_per_s", rate, done)
                if dist.main and writer is not None and tc.image_every and done % tc.image_every == 0:
                    self._log_images(writer, batch, done)
                if tc.checkpoint_every and done % tc.checkpoint_every == 0 and done < tc.steps:
                    self._save(done, counter["consumed"], elapsed0 + time.perf_counter() - t0,
                               optimizers, schedulers, scalers, dist)
                    last_saved = done
        except NonFiniteLoss as exc:
            bar.close()
            good = ckpt.list_checkpoints(ckpt_dir)
            where = f"last good checkpoint: {ckpt_dir}/step-{good[-1]}.*" if good else "no checkpoint was written yet"
            if dist.main:
                with open(self.out / "log.jsonl", "a") as fh:
                    fh.write(json.dumps({"step": step, "event": "non-finite loss", "message": str(exc)}) + "\n")
            if writer is not None:
                writer.close()
            raise NonFiniteLoss(f"training stopped: {exc}; {where}") from None
        finally:
            bar.close()
            del batches

        seconds = time.perf_counter() - t0
        if last_saved != tc.steps and tc.steps > start:
            self._save(tc.steps, counter["consumed"], elapsed0 + seconds, optimizers, schedulers, scalers, dist)
        if dist.main:
            ckpt.save_weights(self.out / "model.safetensors", model, {"model": model.name, "step": str(tc.steps)})
            if writer is not None:
                writer.close()
        dist.barrier()
        ran = tc.steps - start
        return RunResult(self.out, tc.steps, seconds, last_losses, resumed_from, ran / seconds if seconds > 0 else 0.0)

    # -------------------------------------------------------------------------------------------
    def _progress_enabled(self, dist: Dist) -> bool:
        if not dist.main:
            return False
        if self.progress is not None:
            return self.progress
        return sys.stderr.isatty()

    def _tensorboard(self, purge_step: int | None):
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:  # tensorboard is a dependency, but keep training if it is broken
            warnings.warn("tensorboard is not importable; TensorBoard logging disabled", stacklevel=2)
            return None
        return SummaryWriter(str(self.out / "tb"), purge_step=purge_step)

    def _log_images(self, writer, batch, step: int) -> None:
        from ..viz.grids import image_rows

        model = self.model
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                rows = model.visuals(batch)
            writer.add_image("visuals", image_rows(list(rows.values())), step)
        finally:
            model.train(was_training)

    def _truncate_log(self, step: int) -> None:
        path = self.out / "log.jsonl"
        if not path.is_file():
            return
        keep = []
        for line in path.read_text().splitlines():
            try:
                if json.loads(line).get("step", 0) <= step:
                    keep.append(line)
            except json.JSONDecodeError:
                continue  # a line cut by a kill
        ckpt.atomic_write_text(path, "".join(line + "\n" for line in keep))

    def _save(self, step, consumed, elapsed, optimizers, schedulers, scalers, dist: Dist) -> None:
        rngs = dist.gather_objects(rng_state())
        if dist.main:
            tensors: dict[str, Tensor] = {f"model.{k}": v.detach().cpu().clone() for k, v in self.model.state_dict().items()}
            meta = {
                "batches": consumed,
                "elapsed_s": elapsed,
                "model": self.model.name,
                "world": dist.world,
                "torch": torch.__version__,
                "optimizers": {n: ckpt.encode_state(o.state_dict(), tensors, f"state.optim.{n}") for n, o in optimizers.items()},
                "schedulers": {n: ckpt.encode_state(s.state_dict(), tensors, f"state.sched.{n}") for n, s in schedulers.items()},
                "scalers": {n: ckpt.encode_state(s.state_dict(), tensors, f"state.scaler.{n}") for n, s in scalers.items() if s is not None},
                "rng": [ckpt.encode_state(r, tensors, f"state.rng.{i}") for i, r in enumerate(rngs)],
            }
            ckpt.save_checkpoint(self.out / "checkpoints", step, tensors, meta)
            ckpt.prune(self.out / "checkpoints", self.config.train.keep_checkpoints)
        dist.barrier()

    def _restore(self, step, tensors, meta, optimizers, schedulers, scalers, dist: Dist) -> None:
        model_state = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
        missing, unexpected = self.model.load_state_dict(model_state, strict=False)
        if missing or unexpected:
            raise UsageError(
                f"checkpoint step-{step} does not match model {self.model.name!r} "
                f"(missing {missing[:3]}, unexpected {unexpected[:3]}); was config.yaml edited?"
            )
        for n, o in optimizers.items():
            o.load_state_dict(ckpt.decode_state(meta["optimizers"][n], tensors))
        for n, s in schedulers.items():
            s.load_state_dict(ckpt.decode_state(meta["schedulers"][n], tensors))
        for n, s in scalers.items():
            if s is not None and n in meta.get("scalers", {}):
                s.load_state_dict(ckpt.decode_state(meta["scalers"][n], tensors))
        rngs = meta["rng"]
        if len(rngs) != dist.world:
            warnings.warn(
                f"checkpoint was written by {len(rngs)} process(es), resuming with {dist.world}: "
                "data order continues, RNG streams are re-seeded",
                stacklevel=2,
            )
            seed_everything(self.config.train.seed + 7919 * step + dist.rank)
        else:
            set_rng_state(ckpt.decode_state(rngs[dist.rank], tensors))


class _Progress:
    """rich progress bar (losses, steps/s, ETA) on a terminal; a plain line every ~10 s otherwise."""

    def __init__(self, total: int, start: int, enabled: bool) -> None:
        self.enabled = enabled
        self.total = total
        self._bar = None
        self._last_plain = time.perf_counter()
        self._t0 = time.perf_counter()
        self._start = start
        if enabled:
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn,
                                       TextColumn, TimeElapsedColumn, TimeRemainingColumn)

            self._bar = Progress(
                TextColumn("[bold]train"),
                BarColumn(),
                MofNCompleteColumn(),
                TaskProgressColumn(),
                TextColumn("{task.fields[rate]}"),
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                TextColumn("{task.fields[losses]}"),
                transient=False,
            )
            self._bar.start()
            self._task = self._bar.add_task("train", total=total, completed=start, rate="", losses="")

    def update(self, done: int, losses: dict[str, float]) -> None:
        now = time.perf_counter()
        rate = (done - self._start) / max(now - self._t0, 1e-9)
        text = " ".join(f"{k}={v:.4g}" for k, v in list(losses.items())[:4])
        if self._bar is not None:
            self._bar.update(self._task, completed=done, rate=f"{rate:.2f} steps/s", losses=text)
        elif self.enabled and now - self._last_plain > 10:
            self._last_plain = now
            eta = (self.total - done) / rate if rate > 0 else float("inf")
            print(f"step {done}/{self.total} {rate:.2f} steps/s ETA {eta:.0f}s {text}", file=sys.stderr)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
