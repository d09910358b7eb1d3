"""Launchers: one training function (:func:`worker.train_worker`), three ways to run it.

``Launcher.create("local" | "torch" | "horovod", num_proc, ...)``; each ``run(spec)`` returns
rank 0's result (history, every rank's parameter digest).
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from .worker import TrainSpec, train_worker


class Launcher(ABC):
    def __init__(self, num_proc: int = 1, use_gpu: bool = False, spark: Any = None) -> None:
        if num_proc < 1:
            raise ValueError(f"--num-proc must be >= 1, got {num_proc}")
        self.num_proc, self.use_gpu, self.spark = num_proc, use_gpu, spark

    @staticmethod
    def create(kind: str, num_proc: int = 1, use_gpu: bool = False, spark: Any = None) -> "Launcher":
        kinds = {"local": LocalLauncher, "torch": TorchLauncher, "horovod": HorovodLauncher}
        if kind not in kinds:
            raise ValueError(f"unknown launcher {kind!r}; choose from {sorted(kinds)}")
        return kinds[kind](num_proc, use_gpu, spark)

    @abstractmethod
    def run(self, spec: TrainSpec) -> dict[str, Any]: ...


class LocalLauncher(Launcher):
    """One process, in this one: for debugging."""

    def run(self, spec: TrainSpec) -> dict[str, Any]:
        if self.num_proc != 1:
            raise ValueError("the local launcher runs one process; use --launcher torch or horovod")
        return train_worker(spec.to_json(), "local")


class TorchLauncher(Launcher):
    """``pyspark.ml.torch.distributor.TorchDistributor`` running DDP.

    With a ``local[...]`` master the processes run on the driver node (``local_mode``);
    on a cluster they run as one Spark barrier stage, one task per process.
    """

    def run(self, spec: TrainSpec) -> dict[str, Any]:
        from pyspark.ml.torch.distributor import TorchDistributor

        local = self.spark is None or self.spark.sparkContext.master.startswith("local")
        distributor = TorchDistributor(num_processes=self.num_proc, local_mode=local,
                                       use_gpu=self.use_gpu)
        return distributor.run(train_worker, spec.to_json(), "torch")


class HorovodLauncher(Launcher):
    """``horovod.spark.run``: one Spark task per process, gloo (CPU) or NCCL (GPU) collectives."""

    def run(self, spec: TrainSpec) -> dict[str, Any]:
        try:
            import horovod.spark
        except ImportError as e:
            raise RuntimeError("horovod is not installed: run scripts/build_horovod.sh "
                               f"(the README's setup does) ({e})") from None
        results = horovod.spark.run(train_worker, args=(spec.to_json(), "horovod"),
                                    num_proc=self.num_proc, use_gloo=True, verbose=1)
        return next(r for r in results if r["rank"] == 0)
