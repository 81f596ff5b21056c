"""Data-parallel training under torchrun, on PyTorch's own engine: one process per device,
DistributedDataParallel for the gradients (NCCL on GPUs, gloo on CPUs).

Every rank draws the same batch (same seeded order, same seeded augmentation and noise) and trains
on its shard of it, rows rank, rank+world, ...; DDP averages the gradients, so a step equals the
single-process step on the whole batch up to floating-point summation order. Only rank 0 writes the
state and draws progress. Without torchrun (WORLD_SIZE unset) nothing here does anything.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from ddream.errors import BadInput


@dataclass(frozen=True)
class Dist:
    """This process's place among the training processes."""

    rank: int = 0
    world: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def main(self) -> bool:
        return self.rank == 0

    def shard(self, batch: torch.Tensor) -> torch.Tensor:
        return batch[self.rank :: self.world] if self.world > 1 else batch

    def wrap(self, module: nn.Module) -> nn.Module:
        if self.world == 1:
            return module
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(module, device_ids=ids)

    def any(self, flag: bool) -> bool:
        """True on every rank when it is true on any (a stop request, a non-finite loss)."""
        if self.world == 1:
            return bool(flag)
        t = torch.tensor([int(bool(flag))], device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item())

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()


SINGLE = Dist()


def world_size() -> int:
    return int(os.environ.get("WORLD_SIZE", "1"))


def init_from_env(device: torch.device, batch_sizes: tuple[int, ...] = ()) -> Dist:
    """Join torchrun's process group when there is one; each rank's device is cuda:LOCAL_RANK on GPUs."""
    world = world_size()
    if world <= 1:
        return Dist(device=device)
    for b in batch_sizes:
        if b % world:
            raise BadInput(
                f"batch size {b} does not split over {world} processes; use a multiple of {world}"
            )
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    elif device.type != "cpu":
        raise BadInput(f"torchrun training runs on cuda or cpu, not {device.type}")
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Dist(dist.get_rank(), dist.get_world_size(), device)


def shutdown(d: Dist, clean: bool = True) -> None:
    """Leave the process group; after a clean run, together (a rank that exits while another still
    talks to it makes gloo abort the other). After an error torchrun stops the other ranks."""
    if d.world > 1 and dist.is_initialized():
        if clean:
            dist.barrier()
        dist.destroy_process_group()
