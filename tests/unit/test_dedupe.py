"""Dedupe: descriptors, the eval index (three input formats), eval copies and in-set duplicates dropped."""

from __future__ import annotations

import dataclasses
import io
import tarfile

import numpy as np
import pyarrow as pa
from PIL import Image, ImageOps

from wit import schemas
from wit.config import DedupeConfig
from wit.imagehash.descriptors import hamming, phash64, phash64_flip, pixel_hash
from wit.dedupe.index import EvalIndex
from wit.dedupe.job import run_dedupe
from wit.io import folders, ledger


def _photos(shared_data, n):
    return sorted((shared_data / "photos" / "imagenet-sample").glob("*.JPEG"))[:n]


def _jpeg(img, q=90):
    b = io.BytesIO()
    img.convert("RGB").save(b, "JPEG", quality=q)
    return b.getvalue()


def test_descriptors(shared_data):
    a, b = (Image.open(p).convert("RGB") for p in _photos(shared_data, 2))
    assert pixel_hash(a) == pixel_hash(a.copy()) != pixel_hash(b)
    small = a.resize((a.width // 3, a.height // 3))
    assert hamming(phash64(a), phash64(small)) <= 6 < hamming(phash64(a), phash64(b))
    assert hamming(phash64_flip(a), phash64(ImageOps.mirror(a))) <= 6


def test_index_formats_and_query(tmp_path, shared_data):
    photos = _photos(shared_data, 6)
    (tmp_path / "folder" / "cls").mkdir(parents=True)
    with tarfile.open(tmp_path / "shard-0.tar", "w") as tar:
        for i, p in enumerate(photos):
            (tmp_path / "folder" / "cls" / p.name).write_bytes(p.read_bytes())
            tar.add(p, arcname=f"{i:04d}.jpg")
    folders.write_parquet(str(tmp_path / "pq" / "e.parquet"),
                          pa.table({"key": [p.name for p in photos], "jpg": [p.read_bytes() for p in photos]}))
    idx = {k: EvalIndex.build({k: str(v)}) for k, v in
           {"f": tmp_path / "folder", "t": tmp_path / "shard-0.tar", "p": tmp_path / "pq"}.items()}
    assert idx["f"].phashes.tolist() == idx["t"].phashes.tolist() == idx["p"].phashes.tolist()
    assert idx["f"].items[0] == f"cls/{photos[0].name}"
    idx["f"].save(str(tmp_path / "ix"))
    loaded = EvalIndex.load(str(tmp_path / "ix"))
    rows = np.nonzero(loaded.variants == "image")[0]
    assert len(rows) == loaded.n_images == 6 and loaded.items[rows[2]] == f"cls/{photos[2].name}"
    assert loaded.rows_per_image() == {"centre": 1.0, "crop": 19.0, "image": 1.0, "rotate": 4.0, "rotate_crop": 4.0}
    q = np.array([loaded.phashes[rows[2]] ^ np.uint64(0b111), ~loaded.phashes[rows[0]]], dtype=np.uint64)
    m = loaded.query(q, 5)
    assert m.hit.tolist() == [True, False] and m.distance[0] == 3 and m.item[0] == f"cls/{photos[2].name}"
    assert loaded.query(q, {"f": 2}).hit.tolist() == [False, False]  # per-set threshold


def test_eval_copies_and_near_duplicates_dropped(tmp_path, shared_data):
    photos = _photos(shared_data, 30)
    evals, distract = photos[:10], photos[10:]
    (tmp_path / "eval" / "c").mkdir(parents=True)
    for p in evals:
        (tmp_path / "eval" / "c" / p.name).write_bytes(p.read_bytes())
    EvalIndex.build({"imgs": str(tmp_path / "eval")}).save(str(tmp_path / "ix"))
    recs = []

    def add(uid, img):
        recs.append({"uid": uid, "url": "u", "text": "t", "page_url": "", "source": "s", "query_ids": [1],
                     "key": uid[:16], "jpg": _jpeg(img), "width": img.width, "height": img.height,
                     "orig_width": img.width, "orig_height": img.height, "sha256": ""})

    for i, p in enumerate(evals[:5]):
        im = Image.open(p).convert("RGB")
        add(f"e{i}", im.resize((im.width // 2, im.height // 2)) if i % 2 else ImageOps.mirror(im))
    for i, p in enumerate(distract):
        add(f"d{i:02d}", Image.open(p).convert("RGB"))
    add("z-dup", Image.open(distract[3]).convert("RGB").resize((150, 150)))  # near-dup of d03 (earlier uid)
    path = str(tmp_path / "in" / "part-00000.parquet")
    folders.write_parquet(path, pa.Table.from_pylist(recs[:12], schema=schemas.DOWNLOADED))
    folders.write_parquet(path.replace("00000", "00001"), pa.Table.from_pylist(recs[12:], schema=schemas.DOWNLOADED))
    out, led = str(tmp_path / "dd"), str(tmp_path / "ledger")
    rep = run_dedupe([path, path.replace("00000", "00001")], out, str(tmp_path / "ix"), DedupeConfig(),
                     ledger_dir=led, progress=False)
    got = {r["uid"]: ":".join(filter(None, (r["reason"], r["detail"]))) for r in folders.read_parquet(led).to_pylist()}
    for i, p in enumerate(evals[:5]):
        assert got[f"e{i}"] == f"eval_duplicate:imgs:c/{p.name}", (i, got[f"e{i}"])
    assert got["z-dup"] == "near_duplicate" and got["d03"] == ""
    assert rep["kept"] == 20 and rep["near_duplicates"] >= 1
    # the within-dataset pass on these real descriptors: multi-index hashing = the brute-force scan
    from wit.dedupe.near import earlier_duplicates, near_duplicates

    d = folders.read_parquet([str(p) for p in sorted((tmp_path / "dd" / "_descriptors").glob("_desc-*.parquet"))])
    d = d.sort_by("uid")
    for thr in (0, 2, 4, 8, 12, 20, 32, 64):
        brute = earlier_duplicates(d.column("pixel_xxh3"), d.column("phash").to_numpy(), thr, method="brute")
        assert np.array_equal(brute, earlier_duplicates(d.column("pixel_xxh3"), d.column("phash").to_numpy(),
                                                        thr, method="mih")), thr
    assert {r["uid"]: r["dup_of"] for r in near_duplicates(out, 4).to_pylist()}["z-dup"] == "d03"
    kept = folders.read_parquet(out)
    assert kept.schema.names[: len(schemas.DEDUPED)] == schemas.DEDUPED.names
    assert all(c.ok for c in ledger.reconcile(led, {"dedupe": out}).values())


def _overlaid(img):
    """``img`` with caption bars top and bottom, as on memes and stock previews."""
    from PIL import ImageDraw

    img = img.copy()
    w, h = img.size
    draw = ImageDraw.Draw(img)
    draw.rectangle((0, h - h // 8, w, h), fill=(0, 0, 0))
    draw.rectangle((0, 0, w, h // 10), fill=(255, 255, 255))
    draw.text((10, h - h // 10), "SAMPLE TEXT www.example.com", fill=(255, 255, 255))
    return img


def test_image_hashes_equal_the_separate_computations(shared_data):
    from wit.imagehash.descriptors import centre_phash_batch, image_hashes, phash64_batch

    for p in _photos(shared_data, 4):
        im = Image.open(p)
        im.load()
        for img in (im, im.convert("RGB").resize((256, 181)), im.convert("L"), im.convert("RGBA")):
            (h, hf), (c, cf) = phash64_batch([img], with_flip=True), centre_phash_batch([img], with_flip=True)
            got = image_hashes(img)
            assert (got.phash, got.phash_flip, got.centre, got.centre_flip) == (h[0], hf[0], c[0], cf[0]), img.mode


def test_describe_uses_download_descriptors_and_decodes_only_without_them(tmp_path, shared_data):
    from wit.dedupe.describe import DescribeStage
    from wit.download.image import prepare

    photos = _photos(shared_data, 8)
    (tmp_path / "eval" / "c").mkdir(parents=True)
    for p in photos[:2] + [photos[5]]:  # the overlaid photos[5] is 12 bits off whole, 0 off centre
        (tmp_path / "eval" / "c" / p.name).write_bytes(p.read_bytes())
    EvalIndex.build({"imgs": str(tmp_path / "eval")}).save(str(tmp_path / "ix"))

    def row(uid, body, described=True):
        p = prepare(body, image_size=64)
        r = {"uid": uid, "url": "u", "text": "t", "page_url": "", "source": "s", "query_ids": [1], "key": uid,
             "jpg": p.jpg, "width": p.width, "height": p.height, "orig_width": p.orig_width,
             "orig_height": p.orig_height, "sha256": p.sha256}
        return {**r, "phash": p.phash, "phash_flip": p.phash_flip, "pixel_xxh3": p.pixel_xxh3,
                "phash_centre": p.phash_centre, "phash_centre_flip": p.phash_centre_flip} if described else r

    overlay = _jpeg(_overlaid(Image.open(photos[5]).convert("RGB")))
    described = [row("a-copy", photos[0].read_bytes()), row("b", photos[2].read_bytes()),
                 row("c-mirror", _jpeg(ImageOps.mirror(Image.open(photos[1])))), row("f-overlay", overlay)]
    for r in described[1], described[3]:
        r["jpg"] = b"not decodable: describe must not need it"  # the centre match comes from the column
    legacy = [row("d-copy", photos[0].read_bytes(), described=False), row("e", photos[3].read_bytes(), False),
              row("g-overlay", overlay, described=False)]
    legacy_schema = pa.schema([f for f in schemas.DOWNLOADED if f not in schemas.DESCRIPTOR_FIELDS])
    paths = [str(tmp_path / "in" / "part-00000.parquet"), str(tmp_path / "in" / "part-00001.parquet")]
    folders.write_parquet(paths[0], pa.Table.from_pylist(described, schema=schemas.DOWNLOADED))
    folders.write_parquet(paths[1], pa.Table.from_pylist(legacy, schema=legacy_schema))
    stage = DescribeStage(index_dir=str(tmp_path / "ix"))
    stage.setup()
    read_jpg = [("jpg" in t.column_names) for p in paths for t in stage.read_task(p)]
    assert stage.use_centre and read_jpg == [False, True]  # the legacy part only
    out, led = str(tmp_path / "dd"), str(tmp_path / "ledger")
    run_dedupe(paths, out, str(tmp_path / "ix"), DedupeConfig(), ledger_dir=led, progress=False)
    got = {r["uid"]: ":".join(filter(None, (r["reason"], r["detail"]))) for r in folders.read_parquet(led).to_pylist()}
    assert got == {"a-copy": f"eval_duplicate:imgs:c/{photos[0].name}", "b": "",
                   "c-mirror": f"eval_duplicate:imgs:c/{photos[1].name}",
                   "d-copy": f"eval_duplicate:imgs:c/{photos[0].name}", "e": "",
                   "f-overlay": f"eval_duplicate:imgs:c/{photos[5].name}",
                   "g-overlay": f"eval_duplicate:imgs:c/{photos[5].name}"}
    desc = folders.read_parquet(sorted(str(p) for p in (tmp_path / "dd" / "_descriptors").glob("*.parquet"))).to_pylist()
    by_uid = {d["uid"]: d for d in desc}
    index = EvalIndex.load(str(tmp_path / "ix"))
    assert index.exact([by_uid["a-copy"]["pixel_xxh3"]])[0] >= 0  # exact pixels, as the index hashes them
    assert by_uid["b"]["phash"] == described[1]["phash"] and by_uid["e"]["pixel_xxh3"]  # e decoded here
    assert by_uid["f-overlay"]["eval_match_by"] == by_uid["g-overlay"]["eval_match_by"] == "centre"
    kept = {r["uid"]: r for r in folders.read_parquet(out).to_pylist()}
    assert kept["b"]["phash"] == described[1]["phash"] and kept["e"]["phash"] is not None
    assert kept["b"]["phash_centre"] == described[1]["phash_centre"] and kept["e"]["phash_centre"] is None


def test_rotated_and_overlaid_copies_matched_by_their_descriptor(tmp_path, shared_data):
    from wit.dedupe.index import rotate
    from wit.dedupe.describe import DescribeStage
    from wit.download.image import prepare

    photos = _photos(shared_data, 16)
    (tmp_path / "eval").mkdir()
    for p in photos[:6]:
        (tmp_path / "eval" / p.name).write_bytes(p.read_bytes())
    EvalIndex.build({"imgs": str(tmp_path / "eval")}).save(str(tmp_path / "ix"))
    im = [Image.open(p).convert("RGB") for p in photos[:3]]
    bodies = [_jpeg(rotate(im[0], 7, crop=False)), _jpeg(rotate(im[1], -6, crop=True)), _jpeg(_overlaid(im[2]))]
    bodies += [p.read_bytes() for p in photos[6:]]
    rows = [prepare(b, image_size=256) for b in bodies]
    batch = pa.table({"uid": [f"u{i:02d}" for i in range(len(rows))], "jpg": [r.jpg for r in rows],
                      "pixel_xxh3": [r.pixel_xxh3 for r in rows],
                      "phash": pa.array([r.phash for r in rows], pa.uint64()),
                      "phash_flip": pa.array([r.phash_flip for r in rows], pa.uint64())})
    stage = DescribeStage(index_dir=str(tmp_path / "ix"))
    stage.setup()
    d = stage.process_batch(batch).kept.to_pylist()
    assert [(r["eval_match"], r["eval_match_by"]) for r in d[:3]] == [
        (f"imgs:{photos[0].name}", "phash:rotate"), (f"imgs:{photos[1].name}", "phash:rotate_crop"),
        (f"imgs:{photos[2].name}", "centre")]
    assert not any(r["eval_match"] for r in d[3:])
    # without the variant rows and the centre hash, pHash alone misses all three
    bare = DescribeStage(index_dir=str(tmp_path / "ix"), centre_hash=False)
    bare.setup()
    images_only = EvalIndex(bare.index.table.filter(pa.compute.equal(bare.index.table.column("variant"), "image")))
    bare.index, bare.matcher = images_only, dataclasses.replace(bare.matcher, index=images_only)
    assert not any(r["eval_match"] for r in bare.process_batch(batch).kept.to_pylist()[:3])


def test_index_without_variant_column_still_loads(tmp_path, shared_data):
    p = _photos(shared_data, 1)[0]
    img = Image.open(p)
    t = pa.table({"set": ["s", "s"], "item": ["a", "a"], "pixel_xxh3": [pixel_hash(img), ""],
                  "phash": pa.array([phash64(img), 0], pa.uint64())})
    folders.write_parquet(str(tmp_path / "ix" / "index.parquet"), t)
    idx = EvalIndex.load(str(tmp_path / "ix"))
    assert idx.variants.tolist() == ["image", "crop"] and idx.n_images == 1 and idx.embeddings is None

    # an index from before the pixel hash was xxh3: sha256 values never equal a candidate's, so they go
    legacy = t.rename_columns(["set", "item", "pixel_sha256", "phash"])
    folders.write_parquet(str(tmp_path / "old" / "index.parquet"), legacy)
    old = EvalIndex.load(str(tmp_path / "old"))
    assert old.variants.tolist() == ["image", "crop"] and old.table.column("pixel_xxh3").to_pylist() == ["", ""]
    assert old.exact([pixel_hash(img)]).tolist() == [-1] and idx.exact([pixel_hash(img)]).tolist() == [0]
