"""Distributed training on Ray Train: N TorchTrainer workers (gloo on CPU, NCCL on GPUs).

Where the cluster has GPUs but fewer than workers (2 workers on a 1-GPU machine), the workers
share them (half a GPU each) and talk over gloo, since NCCL refuses two ranks on one device.

The only module of wit/train that imports ray. Each worker runs the same ``train_worker`` as
the in-process path; rank 0 writes the run's files, so ``job.out`` must be storage every worker
reaches (a local path on one machine, a shared mount on a cluster).
"""

from __future__ import annotations

import json
import math
import os

from wit.train.loop import SUMMARY, TrainJob, train_worker


def _worker_loop(config: dict) -> None:
    import ray.train
    import ray.train.torch

    ctx = ray.train.get_context()
    train_worker(config["job"], ctx.get_world_rank(), ctx.get_world_size(), ray.train.torch.get_device())


def fit(job: TrainJob, workers: int, address: str | None = None, use_gpu: bool | None = None) -> dict:
    """Run ``job`` on ``workers`` Ray Train workers; return rank 0's summary."""
    import ray
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    from wit.runners.ray import ensure_ray

    ensure_ray(address)
    gpus = ray.cluster_resources().get("GPU", 0) if use_gpu is not False else 0
    if use_gpu and gpus <= 0:
        raise ValueError("use_gpu: the Ray cluster has no GPU")
    per_worker, backend = placement(job.device, workers, gpus)
    if job.device == "cuda" and per_worker == 0:
        raise ValueError(f"--device cuda: the Ray cluster has no GPU for its {workers} workers "
                         "(use --device auto or cpu)")
    job = job if per_worker or job.device != "auto" else _with_device(job, "cpu")
    trainer = TorchTrainer(
        _worker_loop,
        train_loop_config={"job": job},
        torch_config=TorchConfig(backend=backend),
        scaling_config=ScalingConfig(num_workers=workers, use_gpu=per_worker > 0,
                                     resources_per_worker={"GPU": per_worker} if 0 < per_worker < 1 else None),
        run_config=RunConfig(name="train", storage_path=os.path.abspath(os.path.join(job.out, "ray"))),
    )
    trainer.fit()
    # Rank 0 wrote its summary beside the checkpoint (Ray keeps reported metrics only with checkpoints).
    with open(os.path.join(job.out, SUMMARY)) as f:
        return json.load(f)


def placement(device: str, workers: int, gpus: float) -> tuple[float, str]:
    """(GPUs per worker, process-group backend) for ``workers`` workers on a cluster of ``gpus`` GPUs.

    One GPU each with NCCL where there are enough; a share of one with gloo where there are fewer
    GPUs than workers (NCCL refuses two ranks on one device); none (gloo on CPU) for device "cpu"
    or a cluster without GPUs.
    """
    if device == "cpu" or gpus < 1:
        return 0.0, "gloo"
    if gpus >= workers:
        return 1.0, "nccl"
    return 1.0 / math.ceil(workers / math.floor(gpus)), "gloo"


def _with_device(job: TrainJob, device: str) -> TrainJob:
    from dataclasses import replace

    return replace(job, device=device)
