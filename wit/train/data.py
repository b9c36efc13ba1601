"""Stream training batches straight from webdataset tar shards: shuffled, sharded, resumable.

Every (rank, loader worker) pair is a *slot* reading an endless, seeded stream: each pass over
the data shuffles the shard order, gives each slot its own shards (or, with fewer shards than
slots, every slot-th sample), and mixes samples in a shuffle buffer. Batches are built inside
the loader workers and carry the worker's *cursor* (raw samples read so far), so a checkpoint can
store one cursor per worker and a resumed run skips exactly what was consumed, without decoding.
"""

from __future__ import annotations

import io
import random
from dataclasses import dataclass
from itertools import count
from typing import Callable, Iterator

import torch
from PIL import Image
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

IMAGE_KEYS = ("jpg", "jpeg", "png", "webp")


@dataclass(frozen=True)
class LoaderConfig:
    shards: tuple[str, ...]
    batch_size: int
    workers: int = 2
    seed: int = 0
    shuffle_buffer: int = 1000
    rank: int = 0
    world_size: int = 1
    # Decode JPEGs at the smallest DCT scale still >= this side (much cheaper for large images).
    draft_size: int | None = None


def list_shards(path: str) -> list[str]:
    """The ``*.tar`` shards in a folder (or the path itself if it is a tar), sorted."""
    from wit.io import folders

    shards = folders.expand(path, (".tar",))
    if not shards:
        raise FileNotFoundError(f"no .tar shards in {path}")
    return shards


def _decode(sample: dict, transform: Callable, draft_size: int | None = None) -> tuple[torch.Tensor, str] | None:
    """(image tensor, caption), or None for a sample without a readable image or caption."""
    data = next((sample[k] for k in IMAGE_KEYS if k in sample), None)
    text = sample.get("txt")
    if data is None or text is None:
        return None
    try:
        with Image.open(io.BytesIO(data)) as img:
            if draft_size and img.format == "JPEG":
                img.draft("RGB", (draft_size, draft_size))
            image = transform(img)
        return image, text.decode("utf-8") if isinstance(text, bytes) else str(text)
    except (OSError, ValueError, SyntaxError):
        return None


class ShardStream(IterableDataset):
    """Endless batches {image, text, key, worker, cursor, bad} for one rank; ``bad`` counts undecodable samples."""

    def __init__(self, cfg: LoaderConfig, transform: Callable, tokenizer: Callable,
                 cursors: list[int] | None = None):
        self.cfg, self.transform, self.tokenizer = cfg, transform, tokenizer
        self.cursors = list(cursors or [])

    def _slot_samples(self, slot: int, slots: int) -> Iterator[dict]:
        from webdataset.tariterators import tarfile_samples

        cfg = self.cfg
        for epoch in count():
            order = list(cfg.shards)
            random.Random(f"shards:{cfg.seed}:{epoch}").shuffle(order)
            by_shard = len(order) >= slots
            mine = order[slot::slots] if by_shard else order
            rng = random.Random(f"buffer:{cfg.seed}:{epoch}:{slot}")
            buffer: list[dict] = []
            seen = 0
            for i, sample in enumerate(tarfile_samples([{"url": u} for u in mine])):
                if not by_shard and i % slots != slot:
                    continue
                seen += 1
                if len(buffer) < cfg.shuffle_buffer:
                    buffer.append(sample)
                    continue
                j = rng.randrange(len(buffer))
                buffer[j], sample = sample, buffer[j]
                yield sample
            if not seen:
                raise ValueError(f"loader slot {slot}/{slots} got no samples from {len(cfg.shards)} shard(s)")
            rng.shuffle(buffer)
            yield from buffer

    def __iter__(self) -> Iterator[dict]:
        info = get_worker_info()
        worker, n_workers = (info.id, info.num_workers) if info else (0, 1)
        cfg = self.cfg
        slot, slots = cfg.rank * n_workers + worker, cfg.world_size * n_workers
        cursor = self.cursors[worker] if worker < len(self.cursors) else 0
        stream = self._slot_samples(slot, slots)
        for _ in range(cursor):
            next(stream)
        images: list[torch.Tensor] = []
        texts: list[str] = []
        keys: list[str] = []
        bad = 0
        for sample in stream:
            cursor += 1
            decoded = _decode(sample, self.transform, cfg.draft_size)
            if decoded is None:
                bad += 1
                continue
            images.append(decoded[0])
            texts.append(decoded[1])
            keys.append(sample.get("__key__", ""))
            if len(images) == cfg.batch_size:
                yield {"image": torch.stack(images), "text": self.tokenizer(texts), "key": keys,
                       "worker": worker, "cursor": cursor, "bad": bad}
                images, texts, keys, bad = [], [], [], 0


def make_loader(cfg: LoaderConfig, transform: Callable, tokenizer: Callable, cursors: list[int] | None = None,
                generator_seed: int = 0, pin_memory: bool = False) -> DataLoader:
    """A DataLoader over ShardStream; its workers take turns, so batch k comes from worker k % workers."""
    kwargs = dict(prefetch_factor=4, persistent_workers=False) if cfg.workers > 0 else {}
    return DataLoader(ShardStream(cfg, transform, tokenizer, cursors), batch_size=None, num_workers=cfg.workers,
                      pin_memory=pin_memory, generator=torch.Generator().manual_seed(generator_seed), **kwargs)

