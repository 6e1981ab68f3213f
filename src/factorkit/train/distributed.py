"""Multi-process data parallelism under ``torchrun`` (one process per device).

Gradients are averaged across processes inside ``opt.step`` for exactly the parameters of the
player being stepped, with one flattened all-reduce per step; weights start identical
(broadcast from rank 0) and BatchNorm buffers are re-broadcast from rank 0 after each step,
as DDP's ``broadcast_buffers`` does. This is DDP's arithmetic without its forward hooks, which
multi-player models (separate backward passes per player) cannot use. Only rank 0 writes.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors


@dataclass
class Dist:
    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @classmethod
    def from_env(cls, want_cuda: bool) -> "Dist":
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        rank = int(os.environ["RANK"])
        local = int(os.environ.get("LOCAL_RANK", rank))
        if not dist.is_initialized():
            backend = "nccl" if want_cuda else "gloo"
            if want_cuda:
                torch.cuda.set_device(local)
            dist.init_process_group(backend=backend)
        return cls(rank=rank, world=world, local_rank=local)

    def broadcast_module(self, module: torch.nn.Module) -> None:
        if not self.enabled:
            return
        with torch.no_grad():
            for t in list(module.parameters()) + list(module.buffers()):
                dist.broadcast(t.data, src=0)

    def broadcast_buffers(self, module: torch.nn.Module) -> None:
        if not self.enabled:
            return
        bufs = [b for b in module.buffers() if b.dtype.is_floating_point]
        if not bufs:
            return
        flat = _flatten_dense_tensors([b.data for b in bufs])
        dist.broadcast(flat, src=0)
        for b, v in zip(bufs, _unflatten_dense_tensors(flat, [b.data for b in bufs])):
            b.data.copy_(v)

    def average_gradients(self, params: list[torch.nn.Parameter]) -> None:
        if not self.enabled:
            return
        grads = []
        for p in params:
            if p.grad is None:  # unused on this rank: contribute zeros so shapes agree
                p.grad = torch.zeros_like(p)
            grads.append(p.grad.data)
        if not grads:
            return
        flat = _flatten_dense_tensors(grads)
        dist.all_reduce(flat)
        flat /= self.world
        for g, v in zip(grads, _unflatten_dense_tensors(flat, grads)):
            g.copy_(v)

    def broadcast_object(self, obj: Any) -> Any:
        if not self.enabled:
            return obj
        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def gather_objects(self, obj: Any) -> list[Any]:
        if not self.enabled:
            return [obj]
        out: list[Any] = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def all_true(self, flag: bool) -> bool:
        if not self.enabled:
            return flag
        t = torch.tensor([1 if flag else 0])
        dist.all_reduce(t, op=dist.ReduceOp.MIN)
        return bool(t.item())

    def shutdown(self) -> None:
        if self.enabled and dist.is_initialized():
            dist.destroy_process_group()
