"""Download throughput: bare img2dataset vs the wit chain (download -> filter -> dedupe -> shard).

Serves N JPEGs of 300-1500 px (made from ../shared/data/photos) from a loopback HTTP server in
a separate process, then, in one run: img2dataset.download (same resize settings, 1 process,
same thread count) and the wit chain with the local runner. Prints images/s and the ratio.
"""

from __future__ import annotations

import argparse
import io
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pyarrow as pa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PHOTOS = ROOT.parent / "shared" / "data" / "photos" / "imagenet-sample"


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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--threads", type=int, default=16)
    ap.add_argument("--image-size", type=int, default=256)
    args = ap.parse_args()
    from wit import schemas
    from wit.config import DedupeConfig, DownloadConfig, FilterConfig
    from wit.dedupe.stage import run_dedupe
    from wit.download.stage import DownloadStage
    from wit.filter.stage import FilterStage
    from wit.io import folders
    from wit.records import candidate_uid
    from wit.runners import run_stage
    from wit.shard.step import write_shards

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
        try:
            from img2dataset import download

            t0 = time.perf_counter()
            download(url_list=str(tmp / "urls.parquet"), input_format="parquet", url_col="url", caption_col="text",
                     output_folder=str(tmp / "i2d"), output_format="webdataset", processes_count=1,
                     thread_count=args.threads, image_size=args.image_size, resize_mode="keep_ratio",
                     number_sample_per_shard=500, timeout=10, retries=0, distributor="multiprocessing",
                     enable_wandb=False)
            bare = time.perf_counter() - t0
            t_wit, secs = time.perf_counter(), {}
            kw = dict(ledger_dir=str(tmp / "run" / "ledger"), progress=False)
            cfg = DownloadConfig(threads=args.threads, image_size=args.image_size, retries=0,
                                 per_host_concurrency=args.threads)
            inputs = folders.expand(str(tmp / "balanced"), (".parquet",))
            for name, fn in [
                ("download", lambda: run_stage(DownloadStage(cfg=cfg), inputs, str(tmp / "run/downloaded"), **kw)),
                ("filter", lambda: run_stage(FilterStage(cfg=FilterConfig()), folders.expand(str(tmp / "run/downloaded")),
                                             str(tmp / "run/filtered"), **kw)),
                ("dedupe", lambda: run_dedupe(folders.expand(str(tmp / "run/filtered")), str(tmp / "run/deduped"),
                                              None, DedupeConfig(), **kw)),
                ("shard", lambda: write_shards(folders.expand(str(tmp / "run/deduped")), str(tmp / "run/shards"),
                                               500, **kw)),
            ]:
                t0 = time.perf_counter()
                fn()
                secs[name] = round(time.perf_counter() - t0, 2)
            wit_s = time.perf_counter() - t_wit
        finally:
            srv.terminate()
            srv.wait()
        print("## download_throughput")
        print(f"- images: {len(urls)}, threads: {args.threads}, image_size: {args.image_size} keep_ratio")
        print(f"- bare img2dataset: {bare:.1f}s = {len(urls) / bare:.1f} images/s")
        print(f"- wit chain: {wit_s:.1f}s = {len(urls) / wit_s:.1f} images/s  (per step: {secs})")
        print(f"- ratio wit/bare: {bare / wit_s:.2f}x")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
