"""The overlap analysis end to end: hash the training shards, split each eval set into Overlap /
Clean by its nearest training image, score a model on the splits, and write the report."""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from wit.dedupe.index import MODEL_JSON, iter_eval_images
from wit.imagehash.descriptors import hamming
from wit.io import folders
from wit.overlap import report
from wit.overlap.detector import DEFAULT_THRESHOLD, TrainHashStage, TrainIndex, eval_hashes
from wit.overlap.stats import OverlapStats, overlap_stats

log = logging.getLogger(__name__)

HASHES_DIR = "_train_hashes"
INDEX_DIR = "_eval_index"
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
    #: dedupe's copy detector (``wit.dedupe.matcher.CopyMatcher``): every training image is decoded and
    #: matched against an eval index with dedupe's rows (crops, rotations, centre region, and with
    #: ``turns`` / ``warps`` those rows), mirrors and edge bands; an eval image any training image copies
    #: is in Overlap. False: the pHash nearest only (wit's shards' sidecar pHash, nothing decoded).
    variant_rows: bool = True
    #: a saved eval index (`wit dedupe index`, or a run's dedupe/eval_index) to match against instead of
    #: building one from ``eval_sets`` with the options below; it must hold every eval set by name
    index_dir: str | None = None
    crop_variants: bool = True
    rotation_variants: bool = True
    centre: bool = True
    turns: bool = False
    warps: bool = False
    keypoints: bool = False  # ORB keypoints too (`wit dedupe index --keypoints`)
    shuffled: bool = False  # pixel-shuffled copies' histograms too (`wit dedupe index --shuffled`)
    match_flips: bool = True

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


def eval_index(job: OverlapJob) -> str | None:
    """The eval index dedupe's copy detector matches against: ``job.index_dir`` (checked to hold every
    eval set), else one built from the eval sets into OUT/_eval_index; None with ``variant_rows`` off."""
    from wit.dedupe.index import EvalIndex

    if not job.variant_rows:
        return None
    if job.index_dir:
        if not folders.exists(folders.join(job.index_dir, "index.parquet")):
            raise FileNotFoundError(f"eval index {job.index_dir}: no index.parquet (build it with `wit dedupe index`)")
        sets = set(folders.read_parquet([folders.join(job.index_dir, "index.parquet")], columns=["set"])
                   .column("set").unique().to_pylist())
        missing = sorted(set(job.eval_sets) - sets)
        if missing:
            raise ValueError(f"eval index {job.index_dir} holds no set {missing[0]!r} (it holds {sorted(sets)}); "
                             "index the same eval sets as --eval names")
        return job.index_dir
    out = folders.join(job.out, INDEX_DIR)
    settings = {"eval_sets": dict(sorted(job.eval_sets.items())), "crop_variants": job.crop_variants,
                "rotation_variants": job.rotation_variants, "centre": job.centre, "turns": job.turns,
                "warps": job.warps, "keypoints": job.keypoints,
                "shuffled": job.shuffled}
    stamp = folders.join(out, "settings.json")
    if folders.exists(stamp) and folders.read_json(stamp) == settings:
        return out
    index = EvalIndex.build(job.eval_sets, crop_variants=job.crop_variants, rotation_variants=job.rotation_variants,
                            centre=job.centre, dihedral_variants=job.turns, warp_variants=job.warps,
                            keypoints=job.keypoints, shuffled=job.shuffled)
    index.save(out)
    folders.write_json(stamp, settings)
    log.info("overlap: eval index of %d images, %d rows (%s)", index.n_images, len(index), index.rows_per_image())
    return out


def _index_fingerprint(index_dir: str | None) -> str | None:
    """What identifies an eval index's rows: the xxh3 of its index.parquet (a given index rebuilt at the same
    path is a different one)."""
    if not index_dir:
        return None
    import xxhash

    fs, path = folders.fs_and_path(folders.join(index_dir, "index.parquet"))
    with fs.open(path, "rb") as f:
        return xxhash.xxh3_128(f.read()).hexdigest()


def hash_training_shards(job: OverlapJob, index_dir: str | None = None, **runner_kwargs) -> list[str]:
    """Run TrainHashStage over the training tars (one task each); return the hash part files.

    The parts are reused only when written with the same detector settings (OUT/_train_hashes/settings.json)."""
    from wit.runners import run_stage

    tars = folders.expand(job.shards, (".tar",))
    if not tars:
        raise FileNotFoundError(f"no .tar shards in {job.shards}")
    out = folders.join(job.out, HASHES_DIR)
    # The overlap analysis reads the final dataset; it decides no candidate's fate, so no ledger.
    runner_kwargs = {**runner_kwargs, "ledger_dir": None}
    stage = TrainHashStage(use_sidecar=job.use_sidecar, detector=job.detector, detector_model=job.detector_model,
                           index_dir=index_dir, threshold=job.default_threshold, thresholds=dict(job.thresholds),
                           match_flips=job.match_flips, centre_hash=job.centre)
    settings = {"use_sidecar": job.use_sidecar, "detector": job.detector, "detector_model": job.detector_model,
                "index": _index_fingerprint(index_dir),
                "thresholds": {s: job.threshold(s) for s in sorted(job.eval_sets)}, "match_flips": job.match_flips,
                "centre": job.centre}
    stamp = folders.join(out, "settings.json")
    if folders.exists(out) and (not folders.exists(stamp) or folders.read_json(stamp) != settings):
        log.info("overlap: %s was hashed with other settings; hashing again", out)
        folders.remove_tree(out)
    folders.makedirs(out)
    folders.write_json(stamp, settings)
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


def detector_hits(index: TrainIndex) -> dict[tuple[str, str], tuple[int, int, str]]:
    """(set, item) -> (part, row, descriptor) of the first training image dedupe's copy detector matched to
    each eval image (an identical-pixels match first), from the hash parts' ``eval_*`` columns."""
    hits: dict[tuple[str, str], tuple[int, int, str]] = {}
    for p, url in enumerate(index.parts):
        if "eval_set" not in folders.parquet_schema(url).names:
            continue
        t = folders.read_parquet([url], columns=["eval_set", "eval_item", "eval_match_by"])
        rows = pc.indices_nonzero(pc.not_equal(t.column("eval_set"), "")).to_numpy()  # the few copies only
        t = t.take(pa.array(rows))
        for r, s, it, by in zip(rows.tolist(), *(t.column(c).to_pylist() for c in t.column_names)):
            if (s, it) not in hits or (by == "exact" and hits[(s, it)][2] != "exact"):
                hits[(s, it)] = (p, r, by)
    return hits


def analyse_set(index: TrainIndex, name: str, path: str, threshold: int, bundle: tuple | None = None,
                templates: str | None = None, batch: int = 256, pairs: int = 8, embedder=None,
                embed_threshold: float | None = None, hits: dict | None = None,
                hashed: tuple | None = None) -> SetResult:
    """Overlap / Clean / All of one eval set against the training index (and the model, if any).

    An image is in Overlap when its pHash (or its mirror's) is within ``threshold`` of a training image's,
    or when dedupe's copy detector matched some training image to it (``hits``: (set, item) ->
    (part, row, descriptor), from ``detector_hits``), or, with a learned ``embedder``, when its embedding's
    cosine to the nearest training embedding is at least ``embed_threshold``. The training image shown is
    the pHash match, else the detector's, else the embedding match, else the pHash nearest;
    ``matched_by`` names the descriptors that found it ("+"-joined). ``hashed``: ``hash_eval_set``'s
    result when the caller has it."""
    items, h, emb = hashed if hashed is not None else hash_eval_set(path, batch, embedder)
    near = index.search(h.reshape(-1))  # each image, then its mirror
    d = near.distance.reshape(-1, 2)
    pick = d.argmin(axis=1)
    take = np.arange(len(items)) * 2 + pick
    dist, part, row = near.distance[take], near.part[take], near.row[take]
    by_phash = dist <= threshold
    overlap = by_phash.copy()
    found_by = [["phash"] if a else [] for a in by_phash.tolist()]
    for i, item in enumerate(items):
        hit = (hits or {}).get((name, item))
        if hit is not None and not by_phash[i]:
            # the pair shown is the detector's: its distance is the one between those two images' pHashes
            part[i], row[i], overlap[i] = hit[0], hit[1], True
            dist[i] = int(hamming(h[i], index.blocks[hit[0]][hit[1]]).min())
            found_by[i].append(hit[2])
    cosine = None
    if embedder is not None:
        cosine, epart, erow = index.nearest_embedding(emb)
        by_emb = cosine >= embed_threshold
        use = by_emb & ~overlap
        part, row = np.where(use, epart, part), np.where(use, erow, row)
        for i in np.flatnonzero(use):
            dist[i] = int(hamming(h[i], index.blocks[part[i]][row[i]]).min())
        for i in np.flatnonzero(by_emb):
            found_by[i].append("embedding")
        overlap = overlap | by_emb
    matched_by = ["+".join(f) for f in found_by]
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


def with_index_detector(job: OverlapJob) -> OverlapJob:
    """``job`` with the learned copy detector of its ``index_dir`` (the index's ``model.json``: checkpoint,
    model, threshold) when it gives none itself, so `wit overlap --index DIR` judges with everything
    dedupe judged with; ``job.embed_threshold``, when given, still wins."""
    if job.detector or not job.index_dir or not job.variant_rows:
        return job
    path = folders.join(job.index_dir, MODEL_JSON)
    if not folders.exists(path):
        return job
    m = folders.read_json(path)
    torchscript = m.get("kind", "open_clip") == "torchscript"
    return replace(job, detector=m["checkpoint"], detector_model=None if torchscript else m["model"],
                   embed_threshold=job.embed_threshold if job.embed_threshold is not None else m.get("threshold"))


def run_overlap(job: OverlapJob, **runner_kwargs) -> dict:
    """Hash the shards, analyse every eval set, write RUN/overlap's report; return the summary."""
    job = with_index_detector(job)
    unknown = sorted(set(job.thresholds) - set(job.eval_sets))
    if unknown:
        raise ValueError(f"thresholds for unknown eval set(s) {unknown}; eval sets: {sorted(job.eval_sets)}")
    for name, path in job.eval_sets.items():
        if not folders.exists(path):
            raise FileNotFoundError(f"eval set {name}: {path} not found")
    embedder = job.embedder()
    hashed = {}
    if embedder is not None and hasattr(embedder, "calibrate_to"):
        # wit's detector without a given threshold sets it against the eval images, as dedupe's eval
        # index of the same sets does, so the two judge alike
        hashed = {name: hash_eval_set(path, job.hash_batch, embedder) for name, path in sorted(job.eval_sets.items())}
        embedder.calibrate_to(np.concatenate([hashed[n][2] for n in sorted(hashed)]))
    embed_threshold = embedder.describe()["threshold"] if embedder is not None else None
    index_dir = eval_index(job)
    parts = hash_training_shards(job, index_dir, **runner_kwargs)
    index = TrainIndex.from_parts(parts)
    hits = detector_hits(index)
    bundle = None
    if job.model:
        from wit.train import zeroshot

        bundle = zeroshot.load_model(job.model, job.model_name or "wit-vit-tiny")
    results = [analyse_set(index, name, path, job.threshold(name), bundle, job.templates, job.hash_batch, job.pairs,
                           embedder, embed_threshold, hits, hashed.get(name))
               for name, path in sorted(job.eval_sets.items())]
    folders.write_parquet(folders.join(job.out, ITEMS),
                          pa.concat_tables([r.items for r in results]) if results else ITEMS_SCHEMA.empty_table())
    copy_detector = None
    if index_dir:
        from wit.dedupe.index import EvalIndex

        copy_detector = {"eval_index": index_dir, "rows_per_image": EvalIndex.load(index_dir).rows_per_image(),
                         "mirrors": job.match_flips, "centre": job.centre, "edge_bands": True}
    meta = {"train_images": len(index), "train_shards": len(parts), "model": job.model,
            "model_name": job.model_name if job.model else None, "detector": {
                "descriptor": "pHash (64-bit DCT), mirror-aware" + (
                    ", and dedupe's copy detector (identical pixels; pHash against the eval images' variant rows "
                    f"{', '.join(sorted(copy_detector['rows_per_image']))}; centre region; inside edge bands)"
                    if copy_detector else "") + (
                    f" or learned copy descriptor {job.detector} (cosine >= {embed_threshold:.4f})" if embedder else ""),
                "default_threshold": job.default_threshold, "copy_detector": copy_detector,
                "learned": {"checkpoint": job.detector, "model": job.detector_model or "torchscript",
                            "threshold": embed_threshold} if embedder else None}}
    return report.write_report(job.out, results, meta)
