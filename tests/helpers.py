"""Test helpers: make small candidate Parquet folders."""

from __future__ import annotations

import random
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
