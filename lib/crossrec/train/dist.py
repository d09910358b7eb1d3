"""Data-parallel backends behind one small interface: local, torch DDP, Horovod.

The model never knows which one runs it. All three keep every rank's parameters identical:
DDP and Horovod average gradients each step, and both start from rank 0's parameters.
"""
from __future__ import annotations

import os
from abc import ABC, abstractmethod
from typing import Iterable

import torch
from torch import Tensor, nn
from torch.optim import Optimizer


def pick_device(local_rank: int) -> torch.device:
    """CUDA device ``local_rank`` when GPUs are present, else the CPU."""
    if torch.cuda.is_available():
        torch.cuda.set_device(local_rank % torch.cuda.device_count())
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


class Dist(ABC):
    rank: int = 0
    size: int = 1
    local_rank: int = 0
    local_size: int = 1
    device: torch.device = torch.device("cpu")

    @staticmethod
    def create(kind: str) -> "Dist":
        kinds = {"local": LocalDist, "torch": TorchDist, "horovod": HorovodDist}
        if kind not in kinds:
            raise ValueError(f"unknown launcher backend {kind!r}; choose from {sorted(kinds)}")
        return kinds[kind]()

    def wrap(self, task: nn.Module) -> nn.Module:
        """The module to call for the training forward pass."""
        return task

    def optimizer(self, opt: Optimizer, task: nn.Module) -> Optimizer:
        """The optimizer whose ``step`` applies gradients averaged over ranks."""
        return opt

    def step(self, opt: Optimizer, frozen: Iterable[nn.Parameter]) -> None:
        """Apply averaged gradients, leaving ``frozen`` parameters untouched (phase schedule)."""
        for p in frozen:
            p.grad = None  # Adam skips parameters without a gradient
        opt.step()

    def broadcast_parameters(self, module: nn.Module) -> None:
        """Make every rank's parameters and buffers equal to rank 0's."""

    @abstractmethod
    def allreduce_sum(self, t: Tensor) -> Tensor: ...

    @abstractmethod
    def allgather(self, t: Tensor) -> Tensor:
        """t [*] on each rank → [size, *] in rank order."""

    def barrier(self) -> None:
        pass

    def close(self) -> None:
        pass


class LocalDist(Dist):
    """One process: for debugging and small data."""

    def __init__(self) -> None:
        self.device = pick_device(0)

    def allreduce_sum(self, t: Tensor) -> Tensor:
        return t

    def allgather(self, t: Tensor) -> Tensor:
        return t.unsqueeze(0)


class TorchDist(Dist):
    """torch.distributed + DDP: NCCL on GPUs, gloo on CPU. Rank and rendezvous come from the
    environment TorchDistributor (or torchrun) sets: RANK, WORLD_SIZE, LOCAL_RANK, MASTER_*."""

    def __init__(self) -> None:
        import torch.distributed as dist

        self.dist = dist
        if not dist.is_initialized():
            dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        self.rank, self.size = dist.get_rank(), dist.get_world_size()
        self.local_rank = int(os.environ.get("LOCAL_RANK", self.rank))
        self.local_size = int(os.environ.get("LOCAL_WORLD_SIZE", self.size))
        self.device = pick_device(self.local_rank)

    def wrap(self, task: nn.Module) -> nn.Module:
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [self.device.index] if self.device.type == "cuda" else None
        # Buffers (frozen text vectors) never change: broadcasting them every step is waste.
        return DDP(task, device_ids=ids, broadcast_buffers=False)

    def broadcast_parameters(self, module: nn.Module) -> None:
        for t in module.state_dict().values():
            self.dist.broadcast(t, src=0)

    def allreduce_sum(self, t: Tensor) -> Tensor:
        t = t.clone()
        self.dist.all_reduce(t)
        return t

    def allgather(self, t: Tensor) -> Tensor:
        out = [torch.empty_like(t) for _ in range(self.size)]
        self.dist.all_gather(out, t.contiguous())
        return torch.stack(out)

    def barrier(self) -> None:
        self.dist.barrier()

    def close(self) -> None:
        if self.dist.is_initialized():
            self.dist.destroy_process_group()


class HorovodDist(Dist):
    """Horovod: ``hvd.DistributedOptimizer`` averages gradients; gloo on CPU, NCCL on GPUs."""

    def __init__(self) -> None:
        import horovod.torch as hvd

        self.hvd = hvd
        hvd.init()
        self.rank, self.size = hvd.rank(), hvd.size()
        self.local_rank, self.local_size = hvd.local_rank(), hvd.local_size()
        self.device = pick_device(self.local_rank)

    def optimizer(self, opt: Optimizer, task: nn.Module) -> Optimizer:
        return self.hvd.DistributedOptimizer(opt, named_parameters=task.named_parameters())

    def step(self, opt: Optimizer, frozen: Iterable[nn.Parameter]) -> None:
        opt.synchronize()  # wait for the averaged gradients before dropping the frozen ones
        for p in frozen:
            p.grad = None
        with opt.skip_synchronize():
            opt.step()

    def broadcast_parameters(self, module: nn.Module) -> None:
        self.hvd.broadcast_parameters(module.state_dict(), root_rank=0)

    def allreduce_sum(self, t: Tensor) -> Tensor:
        return self.hvd.allreduce(t, op=self.hvd.Sum)

    def allgather(self, t: Tensor) -> Tensor:
        return self.hvd.allgather(t.unsqueeze(0))

    def close(self) -> None:
        self.hvd.shutdown()
