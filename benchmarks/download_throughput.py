"""Download throughput: bare img2dataset vs the wit chain (download -> filter -> dedupe -> shard).

Serves N JPEGs of 300-1500 px (made from ../shared/data/photos) from a loopback HTTP server in
a separate process, then, in one run: img2dataset.download (same resize settings, 1 process,
same thread count) and the wit chain with the local runner, ``--runs`` times alternating. Dedupe
runs against an eval index of ``--eval-images`` mini-web pictures (wit.world.render; none is a copy
of a photo, so every row goes through every lookup, the centre-region one included), built before
the timed runs as the pipeline builds it once per eval set. Prints images/s, the ratio (median over
runs) with the per-run spread, per-step seconds and the load average; then, one thread on a sample
of the same JPEGs, the CPU per image of the decode paths (the floor: decoding at the target scale
alone) and of exact-copy signatures.
"""

from __future__ import annotations

import argparse
import io
import os
import random
import statistics
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PHOTOS = ROOT.parent / "shared" / "data" / "photos" / "imagenet-sample"
sys.path.insert(0, str(ROOT / "benchmarks"))

from _stats import load_average, rounds  # noqa: E402


def make_images(folder: Path, n: int) -> list[str]:
    from PIL import Image

    src = sorted(PHOTOS.glob("*.JPEG"))
    rng = random.Random(0)
    names = []
    base = [Image.open(p).convert("RGB") for p in src]
    for i in range(n):
        img = base[i % len(base)]
        side = rng.randint(300, 1500)
        w, h = (side, int(side * rng.uniform(0.6, 1.0))) if rng.random() < 0.5 else (int(side * rng.uniform(0.6, 1.0)), side)
        b = io.BytesIO()
        img.resize((w, h)).save(b, "JPEG", quality=rng.randint(75, 92))
        name = f"{i:06d}.jpg"
        (folder / name).write_bytes(b.getvalue())
        names.append(name)
    return names


def make_eval_set(folder: Path, n: int) -> None:
    """``n`` procedural pictures of the mini-web as an ImageFolder eval set."""
    from wit.world.concepts import vocabulary
    from wit.world.render import draw

    rng = random.Random(1)
    voc = vocabulary("small")
    concepts = voc["shapes"] + voc["objects"]
    folder.mkdir(parents=True)
    for i in range(n):
        img = draw(rng.sample(concepts, rng.randint(1, 3)), (rng.randint(160, 400), rng.randint(160, 400)), rng)
        img.save(folder / f"{i:05d}.jpg", "JPEG", quality=90)


def bare_img2dataset(tmp: Path, run: int, args) -> float:
    from img2dataset import download

    t0 = time.perf_counter()
    download(url_list=str(tmp / "urls.parquet"), input_format="parquet", url_col="url", caption_col="text",
             output_folder=str(tmp / f"i2d-{run}"), output_format="webdataset", processes_count=1,
             thread_count=args.threads, image_size=args.image_size, resize_mode="keep_ratio",
             number_sample_per_shard=500, timeout=10, retries=0, distributor="multiprocessing",
             enable_wandb=False)
    return time.perf_counter() - t0


def wit_chain(tmp: Path, run: int, index_dir: str | None, args) -> tuple[float, dict]:
    """download -> filter -> dedupe -> shard with the local runner: (seconds, per-step seconds)."""
    from wit.config import DedupeConfig, DownloadConfig, FilterConfig
    from wit.dedupe.job import run_dedupe
    from wit.download.stage import DownloadStage
    from wit.filter.stage import FilterStage
    from wit.io import folders
    from wit.runners import run_stage
    from wit.shard.job import write_shards

    r = tmp / f"run-{run}"
    kw = dict(ledger_dir=str(r / "ledger"), progress=False)
    cfg = DownloadConfig(threads=args.threads, image_size=args.image_size, retries=0, per_host_concurrency=args.threads,
                         allow_private_networks=True)  # the benchmark server is on 127.0.0.1
    inputs = folders.expand(str(tmp / "balanced"), (".parquet",))
    secs, rep = {}, {}
    t_wit = time.perf_counter()
    for name, fn in [
        ("download", lambda: run_stage(DownloadStage(cfg=cfg), inputs, str(r / "downloaded"), **kw)),
        ("filter", lambda: run_stage(FilterStage(cfg=FilterConfig()), folders.expand(str(r / "downloaded")),
                                     str(r / "filtered"), **kw)),
        ("dedupe", lambda: rep.update(run_dedupe(folders.expand(str(r / "filtered")), str(r / "deduped"),
                                                 index_dir, DedupeConfig(), **kw))),
        ("shard", lambda: write_shards(folders.expand(str(r / "deduped")), str(r / "shards"), 500, **kw)),
    ]:
        t0 = time.perf_counter()
        fn()
        secs[name] = round(time.perf_counter() - t0, 2)
    secs["dedupe_describe"] = rep.get("describe_seconds")
    return time.perf_counter() - t_wit, secs


def image_work(folder: Path, names: list[str], image_size: int, rounds_: int) -> None:
    """Per-image CPU of the decode paths and exact-copy signatures, one thread, interleaved rounds.

    The floor is a JPEG decode at the target scale alone (libjpeg-turbo DCT scaling via PIL
    ``draft``, the smallest scale whose output still covers the target size).
    """
    import hashlib

    import cv2
    import simplejpeg
    import xxhash
    from PIL import Image

    from wit.download.image import prepare, target_size

    bodies = [(folder / n).read_bytes() for n in names]

    def draft_decode():
        for b in bodies:
            img = Image.open(io.BytesIO(b))
            img.draft("RGB", target_size(*img.size, image_size, "keep_ratio"))
            img.load()

    def cv2_reduced():
        for b in bodies:
            w, h = Image.open(io.BytesIO(b)).size
            k = max(1, min(min(w, h) // image_size, 8))
            k = 8 if k >= 8 else 4 if k >= 4 else 2 if k >= 2 else 1
            flag = {1: cv2.IMREAD_COLOR, 2: cv2.IMREAD_REDUCED_COLOR_2, 4: cv2.IMREAD_REDUCED_COLOR_4,
                    8: cv2.IMREAD_REDUCED_COLOR_8}[k]
            cv2.imdecode(np.frombuffer(b, np.uint8), flag)

    def scaled_prepare():
        """What ``prepare`` would cost with a scaled decode and a file-bytes signature (not wired in:
        the eval index's exact-copy signature is the hash of full-resolution pixels)."""
        from wit.imagehash.descriptors import image_hashes

        for b in bodies:
            img = Image.open(io.BytesIO(b))
            tw, th = target_size(*img.size, image_size, "keep_ratio")
            img.draft("RGB", (tw, th))
            arr = np.asarray(img.convert("RGB"))
            small = Image.fromarray(cv2.resize(arr, (tw, th), interpolation=cv2.INTER_AREA)
                                    if tw < arr.shape[1] else cv2.resize(arr, (tw, th), interpolation=cv2.INTER_LANCZOS4))
            image_hashes(small)
            hashlib.sha256(b).digest()
            small.save(io.BytesIO(), format="JPEG", quality=95)

    full = [np.asarray(Image.open(io.BytesIO(b)).convert("RGB")) for b in bodies]
    from img2dataset.resizer import Resizer

    resizer = Resizer(image_size=image_size, resize_mode="keep_ratio", resize_only_if_bigger=False)
    fns = {
        "floor: PIL draft decode at target scale": draft_decode,
        "OpenCV IMREAD_REDUCED decode": cv2_reduced,
        "PIL full-resolution decode": lambda: [Image.open(io.BytesIO(b)).load() for b in bodies],
        "OpenCV full-resolution decode": lambda: [cv2.imdecode(np.frombuffer(b, np.uint8), cv2.IMREAD_COLOR)
                                                  for b in bodies],
        "simplejpeg full-resolution decode (strict, what prepare uses)": lambda: [
            simplejpeg.decode_jpeg(b, colorspace="RGB", fastdct=False, fastupsample=False, strict=True)
            for b in bodies],
        "xxh3-128 of full-resolution pixels (the pixel hash)": lambda: [xxhash.xxh3_128(a).digest() for a in full],
        "sha256 of full-resolution pixels": lambda: [hashlib.sha256(a).digest() for a in full],
        "blake2b of full-resolution pixels": lambda: [hashlib.blake2b(a, digest_size=32).digest() for a in full],
        "sha256 of the file bytes": lambda: [hashlib.sha256(b).digest() for b in bodies],
        "img2dataset Resizer (all of bare img2dataset's image work)": lambda: [resizer(io.BytesIO(b)) for b in bodies],
        "wit prepare (all of it)": lambda: [prepare(b, image_size=image_size) for b in bodies],
        "prepare with a scaled decode and a file-bytes signature (sketch)": scaled_prepare,
    }
    times, _ = rounds(fns, rounds_, clock=time.process_time)
    print(f"- image work per image, one thread, {len(bodies)} images, {rounds_} rounds, CPU ms median (min-max):")
    for k, t in times.items():
        ms = sorted(x / len(bodies) * 1e3 for x in t)
        print(f"  - {k}: {statistics.median(ms):.2f} ({ms[0]:.2f}-{ms[-1]:.2f}) ms")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=16)
    ap.add_argument("--image-size", type=int, default=256)
    ap.add_argument("--runs", type=int, default=1, help="bare and chain runs, alternating; medians reported")
    ap.add_argument("--image-rounds", type=int, default=5, help="rounds of the per-image decode/hash table")
    ap.add_argument("--image-sample", type=int, default=100, help="images in the per-image decode/hash table")
    ap.add_argument("--eval-images", type=int, default=250,
                    help="eval set size for dedupe (29 index rows each); 0: no eval index (in-set dedupe only)")
    ap.add_argument("--keypoints", action="store_true", help="eval index with ORB keypoints (`wit dedupe index --keypoints`)")
    ap.add_argument("--shuffled", action="store_true",
                    help="eval index with shuffled-copy histograms (`wit dedupe index --shuffled`)")
    args = ap.parse_args()
    from wit import schemas
    from wit.dedupe.index import EvalIndex
    from wit.io import folders
    from wit.records import candidate_uid

    tmp = Path(tempfile.mkdtemp(prefix="wit-bench-dl-"))
    try:
        (tmp / "www").mkdir()
        t0 = time.perf_counter()
        names = make_images(tmp / "www", args.n)
        print(f"made {len(names)} images in {time.perf_counter() - t0:.1f}s "
              f"({sum(f.stat().st_size for f in (tmp / 'www').iterdir()) / 1e6:.0f} MB)")
        srv = subprocess.Popen([sys.executable, "-m", "http.server", "0", "--bind", "127.0.0.1", "-d", str(tmp / "www")],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        port = int(srv.stdout.readline().split("port ")[1].split()[0])
        base = f"http://127.0.0.1:{port}/"
        urls = [base + n for n in names]
        texts = [f"a photo number {i}" for i in range(len(urls))]
        table = pa.table({"uid": [candidate_uid(u, t) for u, t in zip(urls, texts)], "url": urls, "text": texts,
                          "page_url": [""] * len(urls), "source": ["bench"] * len(urls),
                          "query_ids": [[i % 50] for i in range(len(urls))]}, schema=schemas.MATCHED)
        parts = 4
        for k in range(parts):
            folders.write_parquet(str(tmp / "balanced" / f"part-{k:05d}.parquet"), table.slice(k * len(urls) // parts,
                                  (k + 1) * len(urls) // parts - k * len(urls) // parts))
        table.select(["url", "text"]).to_pandas().to_parquet(tmp / "urls.parquet")
        index_dir = None
        if args.eval_images:
            t0 = time.perf_counter()
            make_eval_set(tmp / "eval", args.eval_images)
            index_dir = str(tmp / "eval_index")
            index = EvalIndex.build({"bench": str(tmp / "eval")}, keypoints=args.keypoints, shuffled=args.shuffled)
            index.save(index_dir)
            print(f"eval index: {index.n_images} images, {len(index)} rows, {time.perf_counter() - t0:.1f}s (untimed)")
        bare, chain, steps, loads = [], [], [], [os.getloadavg()[0]]
        try:
            for run in range(args.runs):
                bare.append(bare_img2dataset(tmp, run, args))
                s, secs = wit_chain(tmp, run, index_dir, args)
                chain.append(s)
                steps.append(secs)
                loads.append(os.getloadavg()[0])
                print(f"run {run}: bare {bare[-1]:.1f}s, chain {s:.1f}s, ratio {bare[-1] / s:.2f}x, per step {secs}, "
                      f"load1 {loads[-1]:.2f}", flush=True)
        finally:
            srv.terminate()
            srv.wait()
        b, c = statistics.median(bare), statistics.median(chain)
        med_steps = {k: round(statistics.median(s[k] for s in steps), 2) for k in steps[0] if steps[0][k] is not None}
        print("## download_throughput")
        image_work(tmp / "www", names[:args.image_sample], args.image_size, args.image_rounds)
        print(f"- images: {len(urls)}, threads: {args.threads}, image_size: {args.image_size} keep_ratio, "
              f"eval index: {args.eval_images} images, runs: {args.runs} (medians)")
        print(f"- bare img2dataset: {b:.1f}s = {len(urls) / b:.1f} images/s")
        print(f"- wit chain: {c:.1f}s = {len(urls) / c:.1f} images/s  (per step: {med_steps})")
        per_run = sorted(x / y for x, y in zip(bare, chain))
        print(f"- ratio wit/bare: {b / c:.2f}x (median of per-run ratios {statistics.median(per_run):.2f}x, "
              f"{per_run[0]:.2f}-{per_run[-1]:.2f})")
        print(f"- bare img2dataset per run: {', '.join(f'{x:.1f}s' for x in bare)}; wit chain per run: "
              f"{', '.join(f'{x:.1f}s' for x in chain)}")
        print(f"- 1-min load average at start and after each run: {', '.join(f'{x:.2f}' for x in loads)} "
              f"({os.cpu_count()} cores); at the end {load_average()}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
