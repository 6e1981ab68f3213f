"""Attribute pair batches for DNA-GAN (methods.md §1.5): for attribute i, a batch of images with
i = 1 (the dominant A's) and one with i = 0 (the recessive B's), drawn from the training split.

``AttributePairSampler`` is an endless, resumable batch sampler. Batch ``k`` lists indices in
blocks of ``batch_size``:

* ``joint`` (the authors' code): for every attribute i in order, A_i then B_i — 2·n blocks;
* ``cyclic`` (the paper's iterative training, §3.4): attribute i = k mod n only — A_i, B_i;
* ``random_pairs`` (the paper's comparison, §3.4): two blocks drawn from the whole split with no
  label constraint; the model keeps the "useful" pairs (labels differ at i = k mod n).

Every stream (attribute i's positives, its negatives, or the whole split) is an endless run of
permutations seeded by ``(seed, stream, epoch)``; the number of draws a stream has made before
batch ``k`` follows from ``k`` alone, so starting at ``start`` gives exactly the batches an
uninterrupted run would have drawn next. With several processes each block of
``batch_size × world`` indices is cut into one slice per rank.
"""

from __future__ import annotations

import sys
from typing import Literal

import numpy as np
import torch
from torch.utils.data import Sampler

from ..errors import UsageError

Schedule = Literal["joint", "cyclic", "random_pairs"]
SCHEDULES = ("joint", "cyclic", "random_pairs")


class _Stream:
    """An endless sequence of seeded permutations of ``rows``; ``take(draw, m)`` is positions
    ``[draw·m, (draw+1)·m)`` of it."""

    def __init__(self, rows: np.ndarray, seed: int) -> None:
        self.rows, self.seed = rows, seed
        self._epoch, self._perm = -1, None

    def _perm_of(self, epoch: int) -> np.ndarray:
        if epoch != self._epoch:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._epoch, self._perm = epoch, self.rows[torch.randperm(len(self.rows), generator=g).numpy()]
        return self._perm

    def take(self, draw: int, m: int) -> list[int]:
        n = len(self.rows)
        out = []
        for p in range(draw * m, (draw + 1) * m):
            e, r = divmod(p, n)
            out.append(int(self._perm_of(e)[r]))
        return out


class AttributePairSampler(Sampler):
    def __init__(self, labels: np.ndarray, attributes: list[int], batch_size: int, seed: int,
                 schedule: Schedule = "joint", rank: int = 0, world: int = 1, start: int = 0,
                 names: list[str] | None = None) -> None:
        if schedule not in SCHEDULES:
            raise UsageError(f"unknown pair schedule {schedule!r}; valid: {', '.join(SCHEDULES)}")
        self.attributes, self.batch_size, self.schedule = list(attributes), batch_size, schedule
        self.rank, self.world, self.start = rank, world, start
        self.block = batch_size * world
        names = names or [str(a) for a in attributes]
        on = np.asarray(labels) > 0.5
        if schedule == "random_pairs":
            if len(on) < 2 * self.block:
                raise UsageError(f"random_pairs: the split has {len(on)} images, fewer than two blocks of "
                                 f"{self.block}; lower --batch-size")
            for a, name in zip(self.attributes, names):
                if on[:, a].all() or not on[:, a].any():
                    raise UsageError(f"random_pairs: every training image has {name} = {int(on[0, a])}, so no pair is "
                                     "useful for it; leave it out (model.attributes)")
            self.streams = [_Stream(np.arange(len(on)), seed * 7919 + 1)]
            return
        self.streams = []
        for j, (a, name) in enumerate(zip(self.attributes, names)):
            for sign, rows in ((1, np.flatnonzero(on[:, a])), (0, np.flatnonzero(~on[:, a]))):
                if len(rows) < self.block:
                    raise UsageError(f"attribute {name}: the training split has only {len(rows)} images with "
                                     f"{name} = {sign}, fewer than one pair batch of {self.block}; lower --batch-size "
                                     "or leave this attribute out (model.attributes)")
                self.streams.append(_Stream(rows, seed * 7919 + 2 * j + sign + 2))

    def attribute_of(self, k: int) -> int | None:
        """The attribute position (0..n−1) batch ``k`` trains under ``cyclic``/``random_pairs``; None for joint."""
        return None if self.schedule == "joint" else k % len(self.attributes)

    def _slice(self, block: list[int]) -> list[int]:
        return block[self.rank * self.batch_size : (self.rank + 1) * self.batch_size]

    def batch(self, k: int) -> list[int]:
        n, b = len(self.attributes), self.block
        if self.schedule == "joint":
            return [i for s in self.streams for i in self._slice(s.take(k, b))]
        if self.schedule == "random_pairs":
            both = self.streams[0].take(k, 2 * b)
            return self._slice(both[:b]) + self._slice(both[b:])
        j = k % n
        draw = k // n  # batches of attribute j before batch k
        return self._slice(self.streams[2 * j].take(draw, b)) + self._slice(self.streams[2 * j + 1].take(draw, b))

    def __iter__(self):
        k = self.start
        while True:
            yield self.batch(k)
            k += 1

    def __len__(self) -> int:  # DataLoader asks; the stream is endless
        return sys.maxsize
