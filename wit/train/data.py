"""Stream training batches straight from webdataset tar shards: shuffled, sharded, resumable.

Every (rank, loader worker) pair is a *slot* reading an endless, seeded stream: each pass over
the data shuffles the shard order, gives each slot its own shards (or, with fewer shards than
slots, every slot-th sample), and mixes samples in a shuffle buffer. Batches are built inside
the loader workers and carry the worker's *cursor* (raw samples read so far), so a checkpoint can
store one cursor per worker and a resumed run skips exactly what was consumed, without decoding.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from itertools import count
from typing import Callable, Iterator

import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from wit.train import images as wit_images
from wit.io import tars
from wit.train.tokens import fast_tokenizer

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
    # Side of the square crops; False takes the central square instead of a random one.
    image_size: int = 224
    random_crop: bool = True


def list_shards(path: str) -> list[str]:
    """The ``*.tar`` shards in a folder (or the path itself if it is a tar), sorted."""
    from wit.io import folders

    shards = folders.expand(path, (".tar",))
    if not shards:
        raise FileNotFoundError(f"no .tar shards in {path}")
    return shards


def _image_and_text(sample: dict) -> tuple[bytes, str] | None:
    """(encoded image, caption), or None for a sample without an image or a UTF-8 caption."""
    data = next((sample[k] for k in IMAGE_KEYS if k in sample), None)
    text = sample.get("txt")
    if data is None or text is None:
        return None
    try:
        return data, text.decode("utf-8") if isinstance(text, bytes) else str(text)
    except UnicodeDecodeError:
        return None


class ShardStream(IterableDataset):
    """Endless batches {image, text, key, worker, cursor, bad} for one rank; ``bad`` counts undecodable samples.

    ``image`` is uint8 [N, 3, S, S] (normalised later, on the training device); ``text`` is int64
    token ids from ``tokenizer`` (open_clip's, sped up by ``tokens.fast_tokenizer``).
    """

    def __init__(self, cfg: LoaderConfig, tokenizer: Callable, cursors: list[int] | None = None):
        self.cfg, self.tokenizer = cfg, fast_tokenizer(tokenizer)
        self.cursors = list(cursors or [])

    def _slot_samples(self, slot: int, slots: int) -> Iterator[dict]:
        cfg = self.cfg
        for epoch in count():
            order = list(cfg.shards)
            random.Random(f"shards:{cfg.seed}:{epoch}").shuffle(order)
            by_shard = len(order) >= slots
            mine = order[slot::slots] if by_shard else order
            rng = random.Random(f"buffer:{cfg.seed}:{epoch}:{slot}")
            buffer: list[dict] = []
            seen = 0
            for i, sample in enumerate(tars.shard_samples(mine, IMAGE_KEYS + ("txt",))):
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
        if info is not None:
            # DataLoader already gives its workers one torch thread; OpenCV's pool would also compete with training.
            import cv2

            cv2.setNumThreads(1)
        cfg = self.cfg
        slot, slots = cfg.rank * n_workers + worker, cfg.world_size * n_workers
        cursor = self.cursors[worker] if worker < len(self.cursors) else 0
        stream = self._slot_samples(slot, slots)
        for _ in range(cursor):
            next(stream)
        while True:
            # Crops are seeded by where the batch starts in the stream, so a resumed run crops alike.
            rng = random.Random(f"crop:{cfg.seed}:{slot}:{cursor}") if cfg.random_crop else None
            parts, texts, keys, bad = [], [], [], 0
            while len(keys) < cfg.batch_size:
                datas, chunk_texts, chunk_keys = [], [], []
                while len(keys) + len(datas) < cfg.batch_size:
                    sample = next(stream)
                    cursor += 1
                    pair = _image_and_text(sample)
                    if pair is None:
                        bad += 1
                        continue
                    datas.append(pair[0])
                    chunk_texts.append(pair[1])
                    chunk_keys.append(sample["__key__"])
                images, ok = wit_images.decode_batch(datas, cfg.image_size, rng)
                bad += ok.count(False)
                parts.append(images)
                texts += [t for t, good in zip(chunk_texts, ok) if good]
                keys += [k for k, good in zip(chunk_keys, ok) if good]
            yield {"image": parts[0] if len(parts) == 1 else torch.cat(parts), "text": self.tokenizer(texts),
                   "key": keys, "worker": worker, "cursor": cursor, "bad": bad}


def make_loader(cfg: LoaderConfig, tokenizer: Callable, cursors: list[int] | None = None,
                generator_seed: int = 0, pin_memory: bool = False) -> DataLoader:
    """A DataLoader over ShardStream; its workers take turns, so batch k comes from worker k % workers."""
    kwargs = dict(prefetch_factor=4, persistent_workers=False) if cfg.workers > 0 else {}
    return DataLoader(ShardStream(cfg, tokenizer, cursors), batch_size=None, num_workers=cfg.workers,
                      pin_memory=pin_memory, generator=torch.Generator().manual_seed(generator_seed), **kwargs)
