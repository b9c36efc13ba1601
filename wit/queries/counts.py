"""Unigram and bigram counts over Wikipedia articles, as a stage, with exact spill-and-merge.

Each task counts one dump slice (wikipedia.DumpSlice) into in-memory counters and spills them,
whenever they pass ``spill_rows`` keys and at the end of the task, as Parquet files hash-bucketed
by key: ``OUT/unigrams/bucket=BBB/part-TTTTT-SSSS.parquet`` (token, count) and
``OUT/bigrams/bucket=BBB/...`` (w1, w2, count). ``merge_unigrams`` and ``bigram_pmi`` sum the
parts bucket by bucket, so memory is bounded by one bucket, and the sums are exact whatever the
number of tasks. Token rules: ``article_tokens`` (docs/queries.md).
"""

from __future__ import annotations

import logging
import math
import zlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from wit.io import folders
from wit.queries import wikipedia
from wit.stage import BatchResult, Stage
from wit.text.normalize import spaced

log = logging.getLogger(__name__)

UNIGRAMS = pa.schema([("token", pa.string()), ("count", pa.int64())])
BIGRAMS = pa.schema([("w1", pa.string()), ("w2", pa.string()), ("count", pa.int64())])
PAGES = pa.schema([("uid", pa.string()), ("ns", pa.int32()), ("redirect", pa.bool_()),
                   ("text", pa.large_string()), ("error", pa.string())])


def article_parts(text: str) -> list[str]:
    """Cleaned article text split on single spaces of its spaced form.

    Non-empty parts are the tokens; an empty part marks a gap of two or more spaces, across
    which no bigram is counted (the matcher could not find ``"a b"`` there).
    """
    # " ".join(str.split()) is normalize.collapse_whitespace (both split on str.isspace()
    # characters, which is what the regex's \s matches), at a quarter of the cost.
    return spaced(" ".join(wikipedia.clean_wikitext(text).split())).split(" ")


def article_tokens(text: str) -> list[str]:
    """The tokens of one article's wikitext, in order."""
    return [t for t in article_parts(text) if t]


def article_bigrams(text: str) -> list[tuple[str, str]]:
    """The bigrams of one article: adjacent tokens separated by exactly one space."""
    parts = article_parts(text)
    return [(a, b) for a, b in zip(parts, parts[1:]) if a and b]


@dataclass
class CountStage(Stage):
    """Count tokens and bigrams of ns-0, non-redirect pages; tasks are encoded DumpSlices."""

    spill_dir: str = ""
    buckets: int = 16
    spill_rows: int = 2_000_000
    name: str = "queries"
    batch_rows: int = 256
    _uni: Counter = field(default_factory=Counter, init=False, repr=False)
    _bi: Counter = field(default_factory=Counter, init=False, repr=False)
    _task: int = field(default=0, init=False, repr=False)
    _seq: int = field(default=0, init=False, repr=False)

    def begin_task(self, path: str, index: int) -> None:
        self._uni, self._bi = Counter(), Counter()
        self._task, self._seq = index, 0
        for kind in ("unigrams", "bigrams"):  # a half-finished earlier attempt of this task
            fs, root = folders.fs_and_path(folders.join(self.spill_dir, kind))
            for p in fs.glob(f"{root}/bucket=*/part-{index:05d}-*.parquet"):
                fs.rm(p)

    def read_task(self, path: str) -> Iterator[pa.Table]:
        rows: list[wikipedia.Page] = []
        for page in wikipedia.iter_pages(wikipedia.DumpSlice.decode(path)):
            rows.append(page)
            if len(rows) >= self.batch_rows:
                yield _pages_table(rows)
                rows = []
        if rows:
            yield _pages_table(rows)

    def process_batch(self, batch: pa.Table) -> BatchResult:
        uids = batch.column("uid").to_pylist()
        kept, drop_uids, reasons = [], [], []
        for uid, ns, redirect, text, error in zip(uids, batch.column("ns").to_pylist(),
                                                  batch.column("redirect").to_pylist(),
                                                  batch.column("text").to_pylist(),
                                                  batch.column("error").to_pylist()):
            if error:
                drop_uids.append(uid), reasons.append("bad_xml")
            elif ns != 0:
                drop_uids.append(uid), reasons.append("namespace")
            elif redirect:
                drop_uids.append(uid), reasons.append("redirect")
            else:
                parts = article_parts(text)
                # The empty gap markers are counted as unigrams too (one update in C) and dropped on
                # spill. Bigrams are counted as "a b" strings, their final form: unlike tuples they
                # are not tracked by the cyclic GC, whose passes over a big counter of tuples cost more.
                self._uni.update(parts)
                self._bi.update([f"{a} {b}" for a, b in zip(parts, parts[1:]) if a and b])
                kept.append(uid)
        if len(self._bi) + len(self._uni) >= self.spill_rows:
            self._spill()
        return BatchResult(pa.table({"uid": pa.array(kept, pa.string())}), BatchResult.drops(drop_uids, reasons))

    def _spill(self) -> None:
        uni, bi = self._uni, self._bi
        self._uni, self._bi = Counter(), Counter()
        uni.pop("", None)
        if uni:
            keys = list(uni.keys())
            table = pa.table([pa.array(keys, pa.string()), pa.array(list(uni.values()), pa.int64())],
                             schema=UNIGRAMS)
            self._write_buckets("unigrams", table, keys)
        if bi:
            keys = list(bi.keys())
            # Tokens hold no white space, so each key splits at its one space into (w1, w2).
            words = pc.list_flatten(pc.split_pattern(pa.array(keys, pa.string()), " ", max_splits=1))
            table = pa.table([words.take(np.arange(0, len(words), 2)), words.take(np.arange(1, len(words), 2)),
                              pa.array(list(bi.values()), pa.int64())], schema=BIGRAMS)
            self._write_buckets("bigrams", table, keys)
        self._seq += 1

    def _write_buckets(self, kind: str, table: pa.Table, keys: list[str]) -> None:
        if not keys:
            return
        b = np.fromiter(map(zlib.crc32, map(str.encode, keys)), np.uint32, len(keys)) % self.buckets
        order = np.argsort(b, kind="stable")
        bounds = np.searchsorted(b[order], np.arange(self.buckets + 1))
        table = table.take(pa.array(order))
        for bucket in range(self.buckets):
            lo, hi = int(bounds[bucket]), int(bounds[bucket + 1])
            if hi > lo:
                self._write(kind, bucket, table.slice(lo, hi - lo))

    def _write(self, kind: str, bucket: int, table: pa.Table) -> None:
        url = folders.join(self.spill_dir, kind, f"bucket={bucket:03d}", f"part-{self._task:05d}-{self._seq:04d}.parquet")
        folders.write_parquet(url, table)

    def write_output(self, kept: pa.Table, out: str, index: int) -> int:
        self._spill()
        return kept.num_rows


def _pages_table(rows: list[wikipedia.Page]) -> pa.Table:
    return pa.table(
        [pa.array([p.uid for p in rows], pa.string()), pa.array([p.ns for p in rows], pa.int32()),
         pa.array([p.redirect for p in rows], pa.bool_()), pa.array([p.text for p in rows], pa.large_string()),
         pa.array([p.error for p in rows], pa.string())],
        schema=PAGES,
    )


# ---------------------------------------------------------------------------------------------
# Merge


def _bucket_dirs(spill_dir: str, kind: str) -> list[str]:
    fs, root = folders.fs_and_path(folders.join(spill_dir, kind))
    if not fs.exists(root):
        return []
    return sorted(p for p in fs.ls(root, detail=False) if p.rsplit("/", 1)[-1].startswith("bucket="))


def _sum_bucket(bucket_dir: str, keys: list[str]) -> pa.Table:
    t = folders.read_parquet(bucket_dir)
    return t.group_by(keys).aggregate([("count", "sum")]).rename_columns(keys + ["count"])


def merge_unigrams(spill_dir: str) -> pa.Table:
    """Exact unigram counts (token, count) over every task, summed bucket by bucket."""
    parts = [_sum_bucket(d, ["token"]) for d in _bucket_dirs(spill_dir, "unigrams")]
    if not parts:
        return UNIGRAMS.empty_table()
    return pa.concat_tables(parts).cast(UNIGRAMS)


def nltk_pmi(n_ii: int, n_ix: int, n_xi: int, n_all: int) -> float:
    """NLTK's ``BigramAssocMeasures.pmi`` (base-2 logs), as BigramCollocationFinder scores it."""
    return math.log2(float(n_ii) * n_all) - math.log2(n_ix * n_xi)


def iter_bigram_buckets(spill_dir: str, unigrams: pa.Table, min_count: int = 1) -> Iterator[pa.Table]:
    """Per bucket, the summed bigrams with ``count >= min_count`` joined with their unigram counts."""
    uni = unigrams.select(["token", "count"])
    for d in _bucket_dirs(spill_dir, "bigrams"):
        t = _sum_bucket(d, ["w1", "w2"])
        if min_count > 1:
            t = t.filter(pc.greater_equal(t["count"], min_count))
        t = t.join(uni.rename_columns(["w1", "n1"]), "w1").join(uni.rename_columns(["w2", "n2"]), "w2")
        yield t


def bigram_pmi(spill_dir: str, unigrams: pa.Table, pmi_min: float | None, min_count: int = 1) -> pa.Table:
    """Bigrams (w1, w2, count, pmi) whose PMI >= ``pmi_min`` (all bigrams when None).

    PMI needs the total token count N, so it is scored after the merge. PMI <= log2(N / count)
    (n1, n2 >= count), so a bigram with count > N / 2**pmi_min cannot pass and is skipped
    before scoring. A float64 pass keeps candidates within 1e-6 of the threshold; they are
    then scored exactly as NLTK does, so the threshold is applied to NLTK's values.
    """
    n_all = int(pc.sum(unigrams["count"]).as_py() or 0)
    out = []
    for t in iter_bigram_buckets(spill_dir, unigrams, min_count):
        if pmi_min is not None and t.num_rows:
            t = t.filter(pc.less_equal(t["count"], n_all / 2.0 ** pmi_min * (1 + 1e-9)))
            c = t["count"].to_numpy().astype(np.float64)
            approx = np.log2(c * n_all) - np.log2(t["n1"].to_numpy().astype(np.float64) * t["n2"].to_numpy())
            t = t.filter(pa.array(approx >= pmi_min - 1e-6))
        pmi = [nltk_pmi(c, a, b, n_all) for c, a, b in zip(t["count"].to_pylist(), t["n1"].to_pylist(),
                                                            t["n2"].to_pylist())]
        t = t.append_column("pmi", pa.array(pmi, pa.float64()))
        if pmi_min is not None:
            t = t.filter(pc.greater_equal(t["pmi"], pmi_min))
        out.append(t.select(["w1", "w2", "count", "pmi"]))
    if not out:
        return pa.table({"w1": pa.array([], pa.string()), "w2": pa.array([], pa.string()),
                         "count": pa.array([], pa.int64()), "pmi": pa.array([], pa.float64())})
    return pa.concat_tables(out)
