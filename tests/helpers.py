"""Test helpers: make small candidate Parquet folders."""

from __future__ import annotations

import contextlib
import os
import random
import subprocess
from pathlib import Path

import pyarrow as pa

from wit import schemas
from wit.io import folders
from wit.records import candidate_uid

WORDS = ["red", "circle", "blue", "square", "a", "photo", "of", "the", "tree", "house", "sun", "dog"]


def make_candidates(folder: Path, parts: int = 4, rows: int = 50, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    paths = []
    for p in range(parts):
        urls, texts = [], []
        for r in range(rows):
            urls.append(f"http://example.test/img/{p}/{r}.jpg")
            texts.append(" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 6))))
        t = pa.table(
            {
                "uid": [candidate_uid(u, t) for u, t in zip(urls, texts)],
                "url": urls,
                "text": texts,
                "page_url": ["http://example.test/page"] * rows,
                "source": ["test"] * rows,
            },
            schema=schemas.CANDIDATES,
        )
        path = str(folder / f"in-{p:03d}.parquet")
        folders.write_parquet(path, t)
        paths.append(path)
    return paths


def make_final(folder: Path, n: int = 7, size: tuple[int, int] = (40, 30)) -> list[str]:
    """One deduped-stage Parquet of ``n`` tiny JPEG samples (pHashes above 2**63), ready to shard."""
    import io

    from PIL import Image

    recs = []
    for i in range(n):
        b = io.BytesIO()
        Image.new("RGB", size, (i * 30 % 256, 90, 9)).save(b, "JPEG")
        recs.append({"uid": f"{i:04d}" + "b" * 28, "url": f"http://x/{i}.jpg", "text": f"caption {i}", "page_url": "",
                     "source": "t", "query_ids": [i % 3], "key": f"{i:04d}" + "b" * 12, "jpg": b.getvalue(),
                     "width": size[0], "height": size[1], "orig_width": 2 * size[0], "orig_height": 2 * size[1],
                     "sha256": f"{i:064x}", "phash": (1 << 64) - 5 - i, "pixel_xxh3": "p"})
    path = str(folder / "final" / "part-00000.parquet")
    folders.write_parquet(path, pa.Table.from_pylist(recs, schema=schemas.DEDUPED))
    return [path]


@contextlib.contextmanager
def small_disk(path: Path, size: str):
    """A tmpfs of ``size`` (e.g. "8m") mounted at ``path`` for the block, to fill up for real; the test
    skips where mounting is not allowed (needs root; CI runs as root)."""
    import pytest

    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("mounting a small disk needs root (CI runs as root)")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True,
                       text=True)
    if r.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)
