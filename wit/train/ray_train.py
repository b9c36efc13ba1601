"""Distributed training on Ray Train: N TorchTrainer workers (gloo on CPU, NCCL on GPUs).

The only module of wit/train that imports ray. Each worker runs the same ``train_worker`` as
the in-process path; rank 0 writes the run's files, so ``job.out`` must be storage every worker
reaches (a local path on one machine, a shared mount on a cluster).
"""

from __future__ import annotations

import json
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
    if use_gpu is None:
        use_gpu = job.device in ("auto", "cuda") and ray.cluster_resources().get("GPU", 0) >= workers
    job = job if use_gpu or job.device != "auto" else _with_device(job, "cpu")
    trainer = TorchTrainer(
        _worker_loop,
        train_loop_config={"job": job},
        torch_config=TorchConfig(backend="nccl" if use_gpu else "gloo"),
        scaling_config=ScalingConfig(num_workers=workers, use_gpu=use_gpu),
        run_config=RunConfig(name="train", storage_path=os.path.abspath(os.path.join(job.out, "ray"))),
    )
    trainer.fit()
    # Rank 0 wrote its summary beside the checkpoint (Ray keeps reported metrics only with checkpoints).
    with open(os.path.join(job.out, SUMMARY)) as f:
        return json.load(f)


def _with_device(job: TrainJob, device: str) -> TrainJob:
    from dataclasses import replace

    return replace(job, device=device)
