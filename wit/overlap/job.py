"""The overlap analysis end to end: hash the training shards, split each eval set into Overlap /
Clean by its nearest training image, score a model on the splits, and write the report."""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from wit.dedupe.index import iter_eval_images
from wit.io import folders
from wit.overlap import report
from wit.overlap.detector import DEFAULT_THRESHOLD, TrainHashStage, TrainIndex, eval_hashes
from wit.overlap.stats import OverlapStats, overlap_stats

log = logging.getLogger(__name__)

HASHES_DIR = "_train_hashes"
ITEMS = "items.parquet"
ITEMS_SCHEMA = pa.schema([
    ("set", pa.string()), ("item", pa.string()), ("label", pa.int32()), ("distance", pa.int16()),
    ("overlap", pa.bool_()), ("correct", pa.bool_()), ("train_uid", pa.string()), ("train_shard", pa.string()),
    ("train_key", pa.string()), ("cosine", pa.float32()), ("matched_by", pa.string()),
])


@dataclass(frozen=True)
class OverlapJob:
    """What to analyse: training shards (tars, folders or globs), eval sets, an optional model."""

    shards: list[str]
    eval_sets: dict[str, str]
    out: str
    thresholds: dict[str, int] = field(default_factory=dict)
    default_threshold: int = DEFAULT_THRESHOLD
    model: str | None = None
    model_name: str | None = None
    templates: str | None = None
    use_sidecar: bool = True
    pairs: int = 8
    hash_batch: int = 256
    #: the learned copy detector dedupe uses (a TorchScript checkpoint, or open_clip with ``detector_model``);
    #: an eval image is in Overlap when its pHash distance or its embedding's cosine says so
    detector: str | None = None
    detector_model: str | None = None
    embed_threshold: float | None = None  # None: the checkpoint's calibrated one (open_clip: 0.95)

    def threshold(self, name: str) -> int:
        return int(self.thresholds.get(name, self.default_threshold))

    def embedder(self):
        """The detector as dedupe builds it, with its threshold (None without a detector)."""
        if not self.detector:
            return None
        from wit.dedupe.detector import make_embedder

        return make_embedder(self.detector_model, self.detector, self.embed_threshold)


@dataclass
class SetResult:
    name: str
    path: str
    threshold: int
    stats: OverlapStats
    items: pa.Table
    model_note: str = ""
    pairs: list[dict] = field(default_factory=list)


def hash_eval_set(path: str, batch: int = 256, embedder=None) -> tuple[list[str], np.ndarray, np.ndarray | None]:
    """(items, (n, 2) uint64 pHashes of each image and its mirror, (n, d) embeddings or None) of an eval
    set, in batches."""
    from PIL import Image

    items: list[str] = []
    hashes: list[np.ndarray] = []
    embeddings: list[np.ndarray] = []
    buf: list = []

    def flush() -> None:
        hashes.append(eval_hashes(buf))
        if embedder is not None:
            embeddings.append(embedder.embed(buf))
        buf.clear()

    for item, data in iter_eval_images(path):
        im = Image.open(io.BytesIO(data))
        im.load()
        items.append(item)
        buf.append(im)
        if len(buf) >= batch:
            flush()
    if buf:
        flush()
    emb = None
    if embedder is not None:
        emb = np.concatenate(embeddings) if embeddings else np.zeros((0, embedder.dim), np.float32)
    return items, (np.concatenate(hashes) if hashes else np.zeros((0, 2), np.uint64)), emb


def imagefolder_labels(path: str, items: list[str]) -> tuple[list[str], np.ndarray] | None:
    """(class folders, label per item) when the eval set is an ImageFolder dir, else None."""
    root = Path(path)
    if not root.is_dir() or any("/" not in it for it in items):
        return None
    classes = sorted(d.name for d in root.iterdir() if d.is_dir())
    index = {c: i for i, c in enumerate(classes)}
    labels = [index.get(it.split("/", 1)[0], -1) for it in items]
    return (classes, np.array(labels, np.int32)) if -1 not in labels else None


def zeroshot_correct(bundle: tuple, name: str, path: str, items: list[str], templates: str | None) -> np.ndarray:
    """Per item: whether the model's top-1 zero-shot prediction is the item's class."""
    from wit.train import zeroshot

    model, preprocess, tokenizer = bundle
    tmpl = zeroshot.load_templates(templates, name) if templates else None
    res = zeroshot.evaluate_imagefolder(model, preprocess, tokenizer, path, templates=tmpl)
    by_item = {Path(p["path"]).relative_to(path).as_posix(): bool(p["correct"]) for p in res["predictions"]}
    missing = [it for it in items if it not in by_item]
    if missing:
        raise ValueError(f"eval set {name}: {len(missing)} images have no prediction (e.g. {missing[0]})")
    return np.array([by_item[it] for it in items], dtype=bool)


def hash_training_shards(job: OverlapJob, **runner_kwargs) -> list[str]:
    """Run TrainHashStage over the training tars (one task each); return the hash part files."""
    from wit.runners import run_stage

    tars = folders.expand(job.shards, (".tar",))
    if not tars:
        raise FileNotFoundError(f"no .tar shards in {job.shards}")
    out = folders.join(job.out, HASHES_DIR)
    # The overlap analysis reads the final dataset; it decides no candidate's fate, so no ledger.
    runner_kwargs = {**runner_kwargs, "ledger_dir": None}
    stage = TrainHashStage(use_sidecar=job.use_sidecar, detector=job.detector, detector_model=job.detector_model)
    rep = run_stage(stage, tars, out, **runner_kwargs)
    if rep.dropped:
        log.warning("overlap: %d training samples without a usable image: %s", rep.dropped, rep.by_reason)
    return folders.expand(out, (".parquet",))


def _items_table(index: TrainIndex, name: str, items: list[str], labels, dist, part, row, overlap,
                 correct, cosine=None, matched_by=None) -> pa.Table:
    n = len(items)
    uid, shard, key = [None] * n, [None] * n, [None] * n
    for p in np.unique(part[part >= 0]):
        where = np.flatnonzero(part == p)
        for i, loc in zip(where, index.locate(int(p), row[where].tolist())):
            uid[i], shard[i], key[i] = loc["uid"], loc["shard"], loc["key"]
    return pa.table({
        "set": pa.array([name] * n, pa.string()), "item": pa.array(items, pa.string()),
        "label": pa.array(labels.tolist() if labels is not None else [None] * n, pa.int32()),
        "distance": pa.array(dist, pa.int16()), "overlap": pa.array(overlap, pa.bool_()),
        "correct": pa.array(correct.tolist() if correct is not None else [None] * n, pa.bool_()),
        "train_uid": pa.array(uid, pa.string()), "train_shard": pa.array(shard, pa.string()),
        "train_key": pa.array(key, pa.string()),
        "cosine": pa.array(cosine.tolist() if cosine is not None else [None] * n, pa.float32()),
        "matched_by": pa.array(matched_by if matched_by is not None else ["phash" if o else "" for o in overlap],
                               pa.string()),
    }, schema=ITEMS_SCHEMA)


def pick_pairs(items: pa.Table, threshold: int, n: int) -> list[dict]:
    """The n closest pairs and the n pairs nearest the threshold, for a person to check it."""
    rows = [r for r in items.to_pylist() if r["train_key"] is not None]
    closest = sorted(rows, key=lambda r: (r["distance"], r["item"]))[:n]
    shown = {r["item"] for r in closest}
    border = sorted((r for r in rows if r["item"] not in shown),
                    key=lambda r: (abs(r["distance"] - threshold - 0.5), r["item"]))[:n]
    return [{**r, "why": "closest"} for r in closest] + [{**r, "why": "near threshold"}
                                                         for r in sorted(border, key=lambda r: r["distance"])]


def analyse_set(index: TrainIndex, name: str, path: str, threshold: int, bundle: tuple | None = None,
                templates: str | None = None, batch: int = 256, pairs: int = 8, embedder=None,
                embed_threshold: float | None = None) -> SetResult:
    """Overlap / Clean / All of one eval set against the training index (and the model, if any).

    With a learned ``embedder`` an image is in Overlap when its pHash is within ``threshold`` or its
    embedding's cosine to the nearest training embedding is at least ``embed_threshold``; the training
    image shown is the pHash match, else the embedding match, else the pHash nearest."""
    items, h, emb = hash_eval_set(path, batch, embedder)
    near = index.search(h.reshape(-1))  # each image, then its mirror
    d = near.distance.reshape(-1, 2)
    pick = d.argmin(axis=1)
    take = np.arange(len(items)) * 2 + pick
    dist, part, row = near.distance[take], near.part[take], near.row[take]
    overlap = dist <= threshold
    cosine = matched_by = None
    if embedder is not None:
        cosine, epart, erow = index.nearest_embedding(emb)
        by_emb = cosine >= embed_threshold
        matched_by = ["phash+embedding" if a and b else "phash" if a else "embedding" if b else ""
                      for a, b in zip(overlap.tolist(), by_emb.tolist())]
        use = by_emb & ~overlap
        part, row = np.where(use, epart, part), np.where(use, erow, row)
        overlap = overlap | by_emb
    lab = imagefolder_labels(path, items)
    labels = lab[1] if lab else None
    correct, note = None, "no model"
    if bundle is not None:
        if lab is None:
            note = "no labels (zero-shot needs an ImageFolder eval set)"
        else:
            correct, note = zeroshot_correct(bundle, name, path, items, templates), ""
    stats = overlap_stats(overlap, correct)
    table = _items_table(index, name, items, labels, dist, part, row, overlap, correct, cosine, matched_by)
    log.info("overlap %s: %d of %d within %d bits", name, stats.n_overlap, stats.n_all, threshold)
    return SetResult(name, path, threshold, stats, table, note, pick_pairs(table, threshold, pairs))


def run_overlap(job: OverlapJob, **runner_kwargs) -> dict:
    """Hash the shards, analyse every eval set, write RUN/overlap's report; return the summary."""
    unknown = sorted(set(job.thresholds) - set(job.eval_sets))
    if unknown:
        raise ValueError(f"thresholds for unknown eval set(s) {unknown}; eval sets: {sorted(job.eval_sets)}")
    for name, path in job.eval_sets.items():
        if not folders.exists(path):
            raise FileNotFoundError(f"eval set {name}: {path} not found")
    embedder = job.embedder()
    embed_threshold = embedder.describe()["threshold"] if embedder is not None else None
    parts = hash_training_shards(job, **runner_kwargs)
    index = TrainIndex.from_parts(parts)
    bundle = None
    if job.model:
        from wit.train import zeroshot

        bundle = zeroshot.load_model(job.model, job.model_name or "wit-vit-tiny")
    results = [analyse_set(index, name, path, job.threshold(name), bundle, job.templates, job.hash_batch, job.pairs,
                           embedder, embed_threshold)
               for name, path in sorted(job.eval_sets.items())]
    folders.write_parquet(folders.join(job.out, ITEMS),
                          pa.concat_tables([r.items for r in results]) if results else ITEMS_SCHEMA.empty_table())
    meta = {"train_images": len(index), "train_shards": len(parts), "model": job.model,
            "model_name": job.model_name if job.model else None, "detector": {
                "descriptor": "pHash (64-bit DCT), mirror-aware" + (
                    f" or learned copy descriptor {job.detector} (cosine >= {embed_threshold:.4f})" if embedder else ""),
                "default_threshold": job.default_threshold,
                "learned": {"checkpoint": job.detector, "model": job.detector_model or "torchscript",
                            "threshold": embed_threshold} if embedder else None}}
    return report.write_report(job.out, results, meta)
