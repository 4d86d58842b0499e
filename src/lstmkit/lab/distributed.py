"""Data parallel training under ``torchrun``: the process group and the few collectives the trainer needs.

With ``WORLD_SIZE`` > 1 every process builds the same global batch for a step and takes its own slice of it;
gradients are averaged by ``DistributedDataParallel`` (gloo on CPU). Rank 0 writes the run folder; a resume is
read by rank 0 and broadcast, so other machines need no shared disk. With one process every method is a no-op.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch


@dataclass
class Distributed:
    rank: int = 0
    world: int = 1
    owns_group: bool = False

    @classmethod
    def from_env(cls) -> Distributed:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world == 1:
            return cls()
        import torch.distributed as dist

        owns = not dist.is_initialized()
        if owns:
            dist.init_process_group("gloo")
        return cls(dist.get_rank(), dist.get_world_size(), owns)

    def close(self, ok: bool) -> None:
        """Tear down a process group we started; after a clean run, wait for every rank first. (A process that
        exits with gloo's threads still running aborts: "terminate called without an active exception".)"""
        if not self.owns_group:
            return
        import gc

        import torch.distributed as dist

        gc.collect()  # DistributedDataParallel's reducer holds the group: let it go before the group does
        if ok:
            dist.barrier()
        dist.destroy_process_group()

    def mean(self, value: float) -> float:
        if self.world == 1:
            return value
        import torch.distributed as dist

        t = torch.tensor([value], dtype=torch.float64)
        dist.all_reduce(t)
        return t.item() / self.world

    def broadcast_flag(self, flag: bool) -> bool:
        if self.world == 1:
            return flag
        import torch.distributed as dist

        t = torch.tensor([int(flag)])
        dist.broadcast(t, 0)
        return bool(t.item())

    def broadcast_bytes(self, data: bytes | None) -> bytes | None:
        """Rank 0's ``data`` (or None) on every rank, as raw bytes (nothing is pickled)."""
        if self.world == 1:
            return data
        import torch.distributed as dist

        n = torch.tensor([-1 if data is None else len(data)])
        dist.broadcast(n, 0)
        if n.item() < 0:
            return None
        if self.rank == 0:
            assert data is not None                     # rank 0 broadcast n >= 0 from its own data
            buf = torch.frombuffer(bytearray(data), dtype=torch.uint8)
        else:
            buf = torch.empty(int(n.item()), dtype=torch.uint8)
        dist.broadcast(buf, 0)
        return buf.numpy().tobytes()

    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        """``model`` itself with one process; wrapped in ``DistributedDataParallel`` with more."""
        if self.world == 1:
            return model
        from torch.nn.parallel import DistributedDataParallel

        return DistributedDataParallel(model)
