"""The contrastive training loop (one process = one rank) and the in-process / Ray Train entry point.

``train_worker`` runs on every rank: it streams batches from the shards, optimises CLIP's loss
with AdamW and a warm-up + cosine schedule, and on rank 0 writes metrics.jsonl and an open_clip
checkpoint. ``train`` runs it in-process (world size 1) or on N Ray Train workers, then evaluates
zero-shot and plots the loss curve.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import torch

from wit.console import TrainBar
from wit.train import model as wit_model
from wit.train.data import LoaderConfig, make_loader
from wit.train.loss import clip_loss

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoints/epoch_latest.pt"
SUMMARY = "summary.json"


@dataclass(frozen=True)
class TrainJob:
    """Everything one training run needs; picklable so Ray Train workers receive it whole."""

    shards: tuple[str, ...]
    out: str
    model: str = "wit-vit-tiny"
    steps: int = 200
    batch_size: int = 64
    lr: float = 5e-4
    warmup: int = 20
    weight_decay: float = 0.1
    loader_workers: int = 2
    seed: int = 0
    shuffle_buffer: int = 1000
    pretrained: str | None = None
    resume: bool = False
    device: str = "auto"
    precision: str = "auto"
    log_every: int = 10
    checkpoint_every: int = 100
    eval_sets: dict[str, str] = field(default_factory=dict)
    # A templates JSON (CLIP_benchmark format, picked by eval set name) or the templates themselves.
    templates: str | tuple[str, ...] | None = None
    # Stop after this many steps of this invocation (tests use it to simulate a killed run).
    stop_after: int | None = None

    @classmethod
    def from_config(cls, cfg, shards: list[str], out: str, eval_sets: dict[str, str] | None = None,
                    resume: bool = False) -> "TrainJob":
        """A job from the pipeline's TrainConfig section."""
        return cls(tuple(shards), str(out), model=cfg.model, steps=cfg.steps, batch_size=cfg.batch_size, lr=cfg.lr,
                   warmup=cfg.warmup, weight_decay=cfg.weight_decay, loader_workers=cfg.workers, seed=cfg.seed,
                   shuffle_buffer=cfg.shuffle_buffer, pretrained=cfg.pretrained, resume=resume, device=cfg.device,
                   precision=cfg.precision, log_every=cfg.log_every, checkpoint_every=cfg.checkpoint_every,
                   eval_sets=dict(eval_sets or {}), templates=cfg.templates)

    @property
    def checkpoint_path(self) -> str:
        return str(Path(self.out) / CHECKPOINT)


def lr_at(step: int, job: TrainJob) -> float:
    """Linear warm-up to ``lr``, then cosine decay to 0 at ``steps``."""
    if step < job.warmup:
        return job.lr * (step + 1) / job.warmup
    progress = (step - job.warmup) / max(1, job.steps - job.warmup)
    return 0.5 * job.lr * (1 + math.cos(math.pi * min(1.0, progress)))


def resolve_device(job: TrainJob) -> torch.device:
    if job.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(job.device)


def amp_dtype(job: TrainJob, device: torch.device) -> torch.dtype | None:
    """The autocast dtype: "auto" is bf16 (fp16 without bf16) on CUDA and fp32 on CPU; CPU runs bf16 on request."""
    if job.precision == "fp32" or (job.precision == "auto" and device.type != "cuda"):
        return None
    if device.type != "cuda":
        if job.precision == "fp16":
            raise ValueError("precision fp16 needs CUDA (its loss scaling is CUDA's GradScaler); use bf16 or fp32")
        return torch.bfloat16
    if job.precision == "fp16":
        return torch.float16
    if job.precision == "bf16" or torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float16


def _save_checkpoint(path: str, payload: dict) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    torch.save(payload, tmp)
    os.replace(tmp, path)


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop metric lines past ``step`` (written after the checkpoint a resumed run starts from)."""
    if not path.exists():
        return
    keep = [line for line in path.read_text().splitlines() if line.strip() and json.loads(line)["step"] <= step]
    path.write_text("".join(line + "\n" for line in keep))


def train_worker(job: TrainJob, rank: int = 0, world_size: int = 1, device: torch.device | None = None,
                 batches: Iterable[dict] | None = None) -> dict:
    """Train on this rank until ``job.steps``; return a summary (rank 0 also writes the run's files).

    ``batches`` replaces the shard loader (the throughput benchmark feeds in-memory tensors).
    """
    device = device or resolve_device(job)
    torch.manual_seed(job.seed)
    bundle = wit_model.create(job.model, pretrained=job.pretrained, device=device)
    model = bundle.model
    optimizer = torch.optim.AdamW(wit_model.param_groups(model, job.weight_decay), lr=job.lr,
                                  betas=(0.9, 0.98), eps=1e-6)
    dtype = amp_dtype(job, device)
    scaler = torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)

    out = Path(job.out)
    metrics_path = out / "metrics.jsonl"
    step, cursors = 0, [0] * max(1, job.loader_workers)
    if os.path.exists(job.checkpoint_path):
        if not job.resume:
            raise ValueError(f"{job.checkpoint_path} exists; pass --resume to continue it or choose another --out")
        ckpt = torch.load(job.checkpoint_path, map_location=device, weights_only=True)
        if ckpt["model"] != job.model:
            raise ValueError(f"checkpoint is a {ckpt['model']}, not a {job.model}")
        model.load_state_dict(ckpt["state_dict"])
        optimizer.load_state_dict(ckpt["optimizer"])
        if "scaler" in ckpt:
            scaler.load_state_dict(ckpt["scaler"])
        step = int(ckpt["step"])
        data = ckpt["data"]
        if data["loader_workers"] == job.loader_workers and data["world_size"] == world_size:
            cursors = list(data["cursors"][rank])
        else:
            log.warning("loader layout changed (%s -> %d workers x %d ranks): data restarts from the beginning",
                        data, job.loader_workers, world_size)
        log.info("resuming at step %d", step)
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        _truncate_metrics(metrics_path, step)

    net = model
    if world_size > 1:
        net = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)

    loader_cfg = LoaderConfig(tuple(job.shards), job.batch_size, job.loader_workers, job.seed, job.shuffle_buffer,
                              rank, world_size, image_size=bundle.image_size)
    loader = make_loader(loader_cfg, bundle.tokenizer, cursors, generator_seed=job.seed * 1_000_003 + step,
                         pin_memory=device.type == "cuda")

    def save(at_step: int) -> None:
        all_cursors = [cursors]
        if world_size > 1:
            import torch.distributed as dist

            all_cursors = [None] * world_size
            dist.all_gather_object(all_cursors, cursors)
        if rank != 0:
            return
        payload = {"step": at_step, "model": job.model, "state_dict": model.state_dict(),
                   "optimizer": optimizer.state_dict(),
                   "data": {"cursors": all_cursors, "loader_workers": job.loader_workers, "world_size": world_size}}
        if scaler.is_enabled():
            payload["scaler"] = scaler.state_dict()
        _save_checkpoint(job.checkpoint_path, payload)

    start_step, last_loss = step, float("nan")
    end = job.steps if job.stop_after is None else min(job.steps, step + job.stop_after)
    model.train()
    t_window, n_window, bad = time.perf_counter(), 0, 0
    batches = iter(batches if batches is not None else loader if step < end else ())
    bar = TrainBar(end, start=step, enabled=rank == 0)
    with open(metrics_path, "a") if rank == 0 else open(os.devnull, "w") as metrics:
        while step < end:
            batch = next(batches)
            cursors[batch["worker"]] = batch["cursor"]
            bad += batch["bad"]
            lr = lr_at(step, job)
            for group in optimizer.param_groups:
                group["lr"] = lr
            images = bundle.normalize(batch["image"].to(device, non_blocking=True))
            texts = batch["text"].to(device, non_blocking=True)
            with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
                image_features, text_features, _ = net(images, texts)
                loss = clip_loss(image_features, text_features, model.logit_scale, rank, world_size)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            with torch.no_grad():
                model.logit_scale.clamp_(0, wit_model.MAX_LOGIT_SCALE)
            step += 1
            n_window += images.shape[0] * world_size
            if step % job.log_every == 0 or step == end:
                # Read the loss only when logging: .item() waits for the device, which a GPU should not do every step.
                last_loss = loss.item()
                now = time.perf_counter()
                record = {"step": step, "loss": round(last_loss, 5), "lr": lr,
                          "temperature": round(1 / model.logit_scale.exp().item(), 5),
                          "logit_scale": round(model.logit_scale.exp().item(), 4),
                          "samples_per_s": round(n_window / (now - t_window), 2), "bad_samples": bad}
                metrics.write(json.dumps(record) + "\n")
                metrics.flush()
                log.info("step %d loss %.4f lr %.2e %.1f samples/s", step, last_loss, lr, record["samples_per_s"])
                bar.step(0, last_loss, record["samples_per_s"])
                t_window, n_window = now, 0
            bar.step()
            if step % job.checkpoint_every == 0 or step == end:
                save(step)
    bar.close()
    del batches, loader
    if step == start_step and rank == 0 and not os.path.exists(job.checkpoint_path):
        save(step)
    summary = {"steps": step, "start_step": start_step, "final_loss": last_loss, "bad_samples": bad,
               "world_size": world_size, "device": str(device), "amp": str(dtype) if dtype else "fp32"}
    if rank == 0:
        (out / SUMMARY).write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def evaluate_sets(job: TrainJob) -> dict:
    """Zero-shot top-1/top-5 of the final checkpoint on each eval set; writes zeroshot.json."""
    from wit.train import zeroshot

    out = Path(job.out)
    results: dict[str, dict] = {}
    if job.eval_sets:
        model, preprocess, tokenizer = zeroshot.load_model(job.checkpoint_path, job.model)
        with open(out / "zeroshot_predictions.jsonl", "w") as items:
            for name, root in sorted(job.eval_sets.items()):
                if isinstance(job.templates, str):
                    templates = zeroshot.load_templates(job.templates, name)
                else:
                    templates = list(job.templates) if job.templates else None
                res = zeroshot.evaluate_imagefolder(model, preprocess, tokenizer, root, templates=templates)
                for item in res.pop("predictions"):
                    items.write(json.dumps({"set": name, **item}) + "\n")
                results[name] = res
                log.info("zero-shot %s: top1 %.3f top5 %.3f (n=%d)", name, res["top1"], res["top5"], res["n"])
    (out / "zeroshot.json").write_text(json.dumps(results, indent=2) + "\n")
    return results
