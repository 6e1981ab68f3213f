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
from collections.abc import Callable
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
from ..files import atomic_write_text
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

    def __init__(self, optimizers, scalers, dist: Dist, fetch) -> None:
        self.optimizers = optimizers
        self.scalers = scalers
        self.dist = dist
        self._fetch = fetch
        self.params = {
            name: [p for g in o.param_groups for p in g["params"] if p.requires_grad] for name, o in optimizers.items()
        }
        self.current_step = 0

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

    def next_batch(self) -> dict[str, Tensor]:
        return self._fetch()

    def lr(self, name: str) -> float:
        return float(self.optimizers[name].param_groups[0]["lr"])


class LossWindow:
    """Means of the losses ``train_step`` returned since the last log record.

    The keys may change from step to step (a critic that runs only on some steps, a term that
    is switched on later): each key is averaged over the steps that reported it, in the order
    the keys were first seen."""

    def __init__(self) -> None:
        self.sums: dict[str, Tensor] = {}
        self.counts: dict[str, int] = {}

    def add(self, names: list[str], values: Tensor) -> None:
        for name, value in zip(names, values):
            if name in self.sums:
                self.sums[name] += value
                self.counts[name] += 1
            else:
                self.sums[name] = value.clone()
                self.counts[name] = 1

    def pop_means(self) -> dict[str, float]:
        """The means so far (one device sync), then an empty window."""
        if not self.sums:
            return {}
        means = (torch.stack(list(self.sums.values())) / torch.tensor(list(self.counts.values()),
                                                                       device=next(iter(self.sums.values())).device))
        out = dict(zip(self.sums, means.tolist()))
        self.sums, self.counts = {}, {}
        return out


def finite_losses(losses: dict[str, Any], device: torch.device, step: int) -> tuple[list[str], Tensor]:
    """``train_step``'s returned losses as (names, one float tensor); NaN/inf is an error naming the loss."""
    names = list(losses)
    values = torch.stack([torch.as_tensor(v, device=device).detach().float() for v in losses.values()])
    if not bool(torch.isfinite(values).all()):
        bad = [n for n, v in zip(names, values.tolist()) if not math.isfinite(v)]
        raise NonFiniteLoss(f"loss {bad[0]!r} is {losses[bad[0]]!s} at step {step}")
    return names, values


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


@dataclass
class _State:
    """What one call of :meth:`Trainer.fit` works with, built by its first steps."""

    dist: Dist
    device: torch.device
    autocast: Any
    optimizers: dict[str, torch.optim.Optimizer]
    schedulers: dict[str, Any]
    scalers: dict[str, Any]
    start: int = 0  # first step to run (the checkpoint's step when resuming)
    consumed: int = 0  # batches drawn so far, over the whole run (data order resumes from here)
    elapsed0: float = 0.0  # training seconds before this call (resumed runs)
    resumed_from: int | None = None
    writer: Any = None
    batches: Any = None  # the batch iterator while the loop runs
    t0: float = 0.0

    def elapsed(self) -> float:
        return self.elapsed0 + time.perf_counter() - self.t0


# --- the trainer -------------------------------------------------------------------------------------


class Trainer:
    """``Trainer(model, dataset, config, out).fit()`` runs ``config.train.steps`` steps of
    ``model.train_step`` and writes the run directory. ``image_grid`` turns the rows of
    ``model.visuals`` into one image for TensorBoard (``factorkit.train`` passes
    ``viz.grids.image_rows``); without it no images are logged."""

    def __init__(
        self,
        model,
        dataset: FactorDataset,
        config: RunConfig,
        out: str | Path,
        resume: bool = False,
        progress: bool | None = None,
        image_grid: Callable[[list[Tensor]], Tensor] | None = None,
    ) -> None:
        self.model = model
        self.dataset = dataset
        self.config = config
        self.out = Path(out)
        self.resume = resume
        self.progress = progress
        self.image_grid = image_grid

    @property
    def checkpoint_dir(self) -> Path:
        return self.out / "checkpoints"

    def fit(self) -> RunResult:
        tc = self.config.train
        want_cuda = tc.device == "cuda" or (tc.device == "auto" and torch.cuda.is_available())
        dist = Dist.from_env(want_cuda)
        try:
            return self._fit(dist)
        finally:
            dist.shutdown()

    def _fit(self, dist: Dist) -> RunResult:
        """The steps of a run, in order; each is a method below."""
        state = self._prepare(dist)
        self._check_batch(dist.world)
        if self.config.train.prerender:
            # render the whole split once only when the run draws at least that many images (else
            # live renders cost less); an existing cache is used either way
            tc = self.config.train
            self.dataset.prerender(build=tc.steps * tc.batch_size * dist.world >= len(self.dataset))
        if self.resume:
            self._resume(state)
        else:
            self._start(state)
        self._compile()
        if dist.main:
            if self.resume:
                self._truncate_log(state.start)
            state.writer = self._tensorboard(state.start if self.resume else None)
        state.batches = self._batches(state)

        def fetch() -> dict[str, Tensor]:
            state.consumed += 1
            return to_device(next(state.batches), state.device)

        players = Players(state.optimizers, state.scalers, dist, fetch)
        state.t0 = time.perf_counter()
        try:
            losses, last_saved = self._run_steps(state, players, fetch)
        except NonFiniteLoss as exc:
            self._record_non_finite(state, players.current_step, exc)
            raise NonFiniteLoss(f"training stopped: {exc}; {self._last_good()}") from None
        finally:
            state.batches = None  # ends the loader's worker processes
        return self._finish(state, losses, last_saved)

    # --- the steps of fit, in order -------------------------------------------------------------
    def _prepare(self, dist: Dist) -> _State:
        """Device and AMP, the model on its device in train mode, its optimizers, schedulers and
        (fp16 only) gradient scalers; the output folder agreed on by every process."""
        tc = self.config.train
        device = resolve_device(tc.device, dist.local_rank)
        amp_dtype = resolve_amp(tc.amp, device)
        self.out = Path(dist.broadcast_object(str(self.out)))
        self.model.to(device)
        self.model.train()
        optimizers = self.model.configure_optimizers()
        schedulers = self.model.configure_schedulers(optimizers, tc.steps)
        use_scaler = amp_dtype == torch.float16
        scalers = {n: (torch.amp.GradScaler("cuda") if use_scaler else None) for n in optimizers}
        autocast = torch.autocast(device_type=device.type, dtype=amp_dtype) if amp_dtype is not None else nullcontext()
        return _State(dist, device, autocast, optimizers, schedulers, scalers)

    def _start(self, state: _State) -> None:
        """A new run: refuse to overwrite one, write config.yaml and dataset.json, seed every RNG
        and give every process rank 0's initial weights."""
        dist = state.dist
        if dist.main:
            if ckpt.list_checkpoints(self.checkpoint_dir):
                raise UsageError(
                    f"{self.out} already holds a run with checkpoints; pass --resume to continue it "
                    "or choose another --out"
                )
            self.out.mkdir(parents=True, exist_ok=True)
            self.config.save(self.out / "config.yaml")
            atomic_write_text(self.out / "dataset.json", json.dumps(self.model.info.to_dict(), indent=1))
        seed_everything(self.config.train.seed + dist.rank)
        dist.broadcast_module(self.model)

    def _resume(self, state: _State) -> None:
        """Continue from the newest complete checkpoint: weights, optimizer, scheduler, scaler and
        RNG states, the data position and the elapsed time."""
        found = ckpt.load_newest(self.checkpoint_dir)
        if found is None:
            raise UsageError(
                f"--resume: {self.out} has no complete checkpoint to resume from "
                "(train without --resume to start a new run)"
            )
        step, tensors, meta = found
        self._restore(step, tensors, meta, state)
        state.start, state.consumed, state.resumed_from = step, meta["batches"], step
        state.elapsed0 = meta.get("elapsed_s", 0.0)
        if state.dist.main:  # --steps may have extended the run
            self.config.save(self.out / "config.yaml")

    def _check_batch(self, world: int) -> None:
        """Batch sizes the model cannot train on, refused before anything is written."""
        bs, n = self.config.train.batch_size, len(self.dataset)
        if bs * world > n:
            raise UsageError(f"train.batch_size={bs}{f' × {world} processes' if world > 1 else ''} is more than the "
                             f"{n} training images; use --batch-size {max(1, n // world)} or less")
        if bs < 2 and any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in self.model.modules()):
            raise UsageError(f"train.batch_size={bs}: {self.model.name} uses batch normalisation, which needs at least "
                             "2 images per batch and process; use --batch-size 2 or more")

    def _compile(self) -> None:
        if self.config.train.compile:
            for child in self.model.children():
                child.compile()

    def _batches(self, state: _State):
        """The endless, resumable batch stream (this process's share of each global batch)."""
        tc, dist = self.config.train, state.dist
        # a model that draws its own batches (DNA-GAN's attribute pairs) returns a resumable sampler
        sampler = self.model.batch_sampler(self.dataset, tc.batch_size, tc.seed, dist.rank, dist.world, state.consumed)
        if sampler is None:
            sampler = InfiniteBatchSampler(len(self.dataset), tc.batch_size, tc.seed, dist.rank, dist.world,
                                           state.consumed)
        loader = DataLoader(
            self.dataset,
            batch_sampler=sampler,
            num_workers=tc.num_workers,
            collate_fn=collate,
            pin_memory=state.device.type == "cuda",
            worker_init_fn=_worker_init if tc.num_workers else None,
            prefetch_factor=4 if tc.num_workers else None,
            generator=torch.Generator().manual_seed(tc.seed),
        )
        return iter(loader)

    def _run_steps(self, state: _State, players: Players, fetch) -> tuple[dict[str, float], int]:
        """The loop: one ``train_step`` per step, then logging, images and checkpoints on their
        intervals. Returns the last logged loss means and the step of the last checkpoint."""
        tc = self.config.train
        bar = _Progress(tc.steps, state.start, enabled=self._progress_enabled(state.dist))
        window = LossWindow()
        last_losses: dict[str, float] = {}
        last_saved = state.start
        t_window, steps_window = state.t0, 0
        try:
            for step in range(state.start, tc.steps):
                players.current_step = step
                batch = fetch()
                with state.autocast:
                    losses = self.model.train_step(batch, step, players)
                for s in state.schedulers.values():
                    s.step()
                state.dist.broadcast_buffers(self.model)
                window.add(*finite_losses(losses, state.device, step))
                done = step + 1
                steps_window += 1
                bar.update(done, last_losses)
                if done % tc.log_every == 0 or done == tc.steps:
                    now = time.perf_counter()
                    last_losses = window.pop_means()
                    self._log(state, done, last_losses, steps_window / max(now - t_window, 1e-9), players)
                    t_window, steps_window = now, 0
                if tc.image_every and done % tc.image_every == 0:
                    self._log_images(state, batch, done)
                if tc.checkpoint_every and done % tc.checkpoint_every == 0 and done < tc.steps:
                    self._save(done, state)
                    last_saved = done
        finally:
            bar.close()
        return last_losses, last_saved

    def _log(self, state: _State, done: int, losses: dict[str, float], rate: float, players: Players) -> None:
        """One log.jsonl record and the TensorBoard scalars (rank 0)."""
        if not state.dist.main:
            return
        record = {
            "step": done,
            "elapsed_s": round(state.elapsed(), 3),
            "steps_per_s": round(rate, 3),
            "losses": losses,
            "lr": {n: players.lr(n) for n in state.optimizers},
        }
        with open(self.out / "log.jsonl", "a") as fh:
            fh.write(json.dumps(record) + "\n")
        if state.writer is not None:
            for k, v in losses.items():
                state.writer.add_scalar(f"loss/{k}", v, done)
            state.writer.add_scalar("perf/steps_per_s", rate, done)

    def _finish(self, state: _State, losses: dict[str, float], last_saved: int) -> RunResult:
        """The final checkpoint (unless the last step wrote one) and model.safetensors."""
        tc = self.config.train
        seconds = time.perf_counter() - state.t0
        if last_saved != tc.steps and tc.steps > state.start:
            self._save(tc.steps, state)
        if state.dist.main:
            ckpt.save_weights(self.out / "model.safetensors", self.model, {"model": self.model.name, "step": str(tc.steps)})
            if state.writer is not None:
                state.writer.close()
        state.dist.barrier()
        ran = tc.steps - state.start
        return RunResult(self.out, tc.steps, seconds, losses, state.resumed_from, ran / seconds if seconds > 0 else 0.0)

    def _record_non_finite(self, state: _State, step: int, exc: NonFiniteLoss) -> None:
        if state.dist.main:
            with open(self.out / "log.jsonl", "a") as fh:
                fh.write(json.dumps({"step": step, "event": "non-finite loss", "message": str(exc)}) + "\n")
        if state.writer is not None:
            state.writer.close()

    def _last_good(self) -> str:
        good = ckpt.list_checkpoints(self.checkpoint_dir)
        return f"last good checkpoint: {self.checkpoint_dir}/step-{good[-1]}.*" if good else "no checkpoint was written yet"

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

    def _log_images(self, state: _State, batch, step: int) -> None:
        if state.writer is None or self.image_grid is None:
            return
        model = self.model
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                rows = model.visuals(batch)
            state.writer.add_image("visuals", self.image_grid(list(rows.values())), step)
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
        atomic_write_text(path, "".join(line + "\n" for line in keep))

    def _save(self, step: int, state: _State) -> None:
        dist = state.dist
        rngs = dist.gather_objects(rng_state())
        if dist.main:
            tensors: dict[str, Tensor] = {f"model.{k}": v.detach().cpu().clone() for k, v in self.model.state_dict().items()}
            enc = ckpt.encode_state
            meta = {
                "batches": state.consumed,
                "elapsed_s": state.elapsed(),
                "model": self.model.name,
                "world": dist.world,
                "torch": torch.__version__,
                "optimizers": {n: enc(o.state_dict(), tensors, f"state.optim.{n}") for n, o in state.optimizers.items()},
                "schedulers": {n: enc(s.state_dict(), tensors, f"state.sched.{n}") for n, s in state.schedulers.items()},
                "scalers": {n: enc(s.state_dict(), tensors, f"state.scaler.{n}")
                            for n, s in state.scalers.items() if s is not None},
                "rng": [enc(r, tensors, f"state.rng.{i}") for i, r in enumerate(rngs)],
            }
            ckpt.save_checkpoint(self.checkpoint_dir, step, tensors, meta)
            ckpt.prune(self.checkpoint_dir, self.config.train.keep_checkpoints)
        dist.barrier()

    def _restore(self, step, tensors, meta, state: _State) -> None:
        model_state = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
        missing, unexpected = self.model.load_state_dict(model_state, strict=False)
        if missing or unexpected:
            raise UsageError(
                f"checkpoint step-{step} does not match model {self.model.name!r} "
                f"(missing {missing[:3]}, unexpected {unexpected[:3]}); was config.yaml edited?"
            )
        for n, o in state.optimizers.items():
            o.load_state_dict(ckpt.decode_state(meta["optimizers"][n], tensors))
        for n, s in state.schedulers.items():
            s.load_state_dict(ckpt.decode_state(meta["schedulers"][n], tensors))
        for n, s in state.scalers.items():
            if s is not None and n in meta.get("scalers", {}):
                s.load_state_dict(ckpt.decode_state(meta["scalers"][n], tensors))
        rngs, dist = meta["rng"], state.dist
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
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TaskProgressColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

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
