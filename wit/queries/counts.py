"""Unigram and bigram counts over Wikipedia articles, as a stage, with exact spill-and-merge.

Each task counts one dump slice (wikipedia.DumpSlice) with ``TaskCounts`` (vectorised: numpy and
Arrow kernels, no per-token Python) and spills the counts, whenever they pass ``spill_rows`` keys
and at the end of the task, as one Arrow IPC file per kind, ``OUT/unigrams/part-TTTTT-SSSS.arrow``
(token, count) and ``OUT/bigrams/part-TTTTT-SSSS.arrow`` (w1, w2, count), whose record batch b
holds the keys of hash bucket b. ``merge_unigrams`` and ``bigram_pmi`` read batch b of every
spill and sum them, bucket by bucket, so memory is bounded by one bucket, and the sums are exact
whatever the number of tasks. Token rules: ``article_tokens`` (docs/queries.md).
"""

from __future__ import annotations

import functools
import logging
import math
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from wit.io import folders
from wit.queries import wikipedia
from wit.queries.vocab import Vocabulary
from wit.stage import BatchResult, Stage
from wit.text.normalize import collapse_whitespace, spaced, token_dictionary

log = logging.getLogger(__name__)

SPILL_SUFFIX = ".arrow"
UNIGRAMS = pa.schema([("token", pa.string()), ("count", pa.int64())])
BIGRAMS = pa.schema([("w1", pa.string()), ("w2", pa.string()), ("count", pa.int64())])
FOLD = 16  # spills summed per step of the merge
PAGES = pa.schema([("uid", pa.string()), ("ns", pa.int32()), ("redirect", pa.bool_()),
                   ("cleaned", pa.large_string()), ("error", pa.string())])


def article_parts(text: str) -> list[str]:
    """Cleaned article text split on single spaces of its spaced form (the reference definition).

    Non-empty parts are the tokens; an empty part marks a gap of two or more spaces, across
    which no bigram is counted (the matcher could not find ``"a b"`` there). The counting stage
    computes the same parts for a whole batch with ``normalize.spaced_parts``.
    """
    return spaced(collapse_whitespace(wikipedia.clean_wikitext(text))).split(" ")


def article_tokens(text: str) -> list[str]:
    """The tokens of one article's wikitext, in order."""
    return [t for t in article_parts(text) if t]


_PAIR_MIX = np.uint64(0x100000001B3)  # an odd multiplier: a bigram's bucket hash from its words'


def _sum_sorted(keys: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct keys (sorted) with their summed counts."""
    order = np.argsort(keys, kind="stable")
    keys, counts = keys[order], counts[order]
    if not len(keys):
        return keys, counts
    first = np.concatenate([[0], np.flatnonzero(keys[1:] != keys[:-1]) + 1])
    return keys[first], np.add.reduceat(counts, first)


class TaskCounts:
    """Unigram and bigram counts of one task, kept as integer ids into the task's vocabulary.

    A batch of cleaned articles is tokenised and dictionary-encoded by ``normalize.token_dictionary``
    (one pass in C); the batch's distinct tokens get task ids from ``vocab.Vocabulary``. Unigram
    counts are a bincount of the ids; a bigram is the int64 ``id1 << 32 | id2``, counted per batch
    with ``np.unique`` and merged by a sort when the pending rows reach the merged size (so the
    work stays linear). Strings are rebuilt only when the counts are drained for a spill.
    """

    def __init__(self, floor: int = 1 << 18) -> None:
        self.floor = floor
        self._reset()

    def _reset(self) -> None:
        self.vocab = Vocabulary()
        self.uni = np.zeros(0, np.int64)
        self.bi_keys = np.zeros(0, np.int64)
        self.bi_counts = np.zeros(0, np.int64)
        self.pending: list[tuple[np.ndarray, np.ndarray]] = []
        self.pending_rows = 0

    def rows(self) -> int:
        """An upper bound on the distinct unigrams plus bigrams held."""
        return len(self.vocab) + len(self.bi_keys) + self.pending_rows

    def add(self, texts: pa.Array) -> None:
        words, codes, joined, hashes = token_dictionary(texts)
        if not len(codes):
            return
        codes = self.vocab.ids(words, hashes)[codes]
        counts = np.bincount(codes, minlength=len(self.vocab))
        counts[:len(self.uni)] += self.uni
        self.uni = counts
        pairs = (codes[:-1][joined] << 32) | codes[1:][joined]
        self.pending.append(np.unique(pairs, return_counts=True))
        self.pending_rows += len(self.pending[-1][0])
        if self.pending_rows >= max(self.floor, len(self.bi_keys)):
            self._merge()

    def _merge(self) -> None:
        if not self.pending:
            return
        if len(self.pending) == 1 and not len(self.bi_keys):  # already distinct and sorted
            self.bi_keys, self.bi_counts = self.pending[0]
        else:
            self.bi_keys, self.bi_counts = _sum_sorted(
                np.concatenate([self.bi_keys] + [k for k, _ in self.pending]),
                np.concatenate([self.bi_counts] + [c for _, c in self.pending]))
        self.pending, self.pending_rows = [], 0

    def drain(self, buckets: int) -> tuple[pa.Table, np.ndarray, pa.Table, np.ndarray]:
        """``(unigrams, bounds, bigrams, bounds)`` ordered by spill bucket, leaving this empty.

        Rows of bucket b are ``table[bounds[b]:bounds[b + 1]]``. Sorting happens on the integer
        ids, before any string column is built.
        """
        self._merge()
        vocab = self.vocab.words().cast(pa.string())
        hashes = self.vocab.hashes()  # computed once, when each word was first seen
        uni_order, uni_bounds = _bucket_order(hashes, buckets)
        uni = pa.table([vocab.take(pa.array(uni_order)), pa.array(self.uni[uni_order], pa.int64())],
                       schema=UNIGRAMS)
        first, second = self.bi_keys >> 32, self.bi_keys & 0xFFFFFFFF
        bi_order, bi_bounds = _bucket_order(hashes[first] * _PAIR_MIX ^ hashes[second], buckets)
        first, second = first[bi_order], second[bi_order]
        bi = pa.table([vocab.take(pa.array(first)), vocab.take(pa.array(second)),
                       pa.array(self.bi_counts[bi_order], pa.int64())], schema=BIGRAMS)
        self._reset()
        return uni, uni_bounds, bi, bi_bounds


def _bucket_order(hashes: np.ndarray, buckets: int) -> tuple[np.ndarray, np.ndarray]:
    """A stable order of rows by bucket (``hash % buckets``) and each bucket's start row."""
    folded = (hashes ^ (hashes >> np.uint64(32))).astype(np.uint32)  # 32-bit modulo is cheaper
    b = (folded % np.uint32(buckets)).astype(np.uint16 if buckets <= 1 << 16 else np.int64)
    order = np.argsort(b, kind="stable")  # a radix sort for 16-bit keys
    return order, np.searchsorted(b[order], np.arange(buckets + 1))


@functools.cache  # once per process
def _warn_slow_cleaner() -> None:
    log.warning("wit.queries._wikiclean is not built in this Python environment: counting uses the "
                "pure-Python wikitext cleaner (same counts, cleaning ~7x slower). Run `make setup` "
                "(pip install -e . with a C compiler) where the workers run.")


@dataclass
class CountStage(Stage):
    """Count tokens and bigrams of ns-0, non-redirect pages; tasks are encoded DumpSlices."""

    spill_dir: str = ""
    buckets: int = 16
    spill_rows: int = 2_000_000
    name: str = "queries"
    batch_rows: int = 1024
    spill_compression: str = "none"
    _counts: TaskCounts | None = field(default=None, init=False, repr=False)
    _task: int = field(default=0, init=False, repr=False)
    _seq: int = field(default=0, init=False, repr=False)

    def begin_task(self, path: str, index: int) -> None:
        if wikipedia._wikiclean is None:
            _warn_slow_cleaner()
        self._counts = TaskCounts(max(1, self.spill_rows // 4))
        self._task, self._seq = index, 0
        for kind in ("unigrams", "bigrams"):  # a half-finished earlier attempt of this task
            fs, root = folders.fs_and_path(folders.join(self.spill_dir, kind))
            # Its spills, and temporary files of a spill whose writer died before the rename.
            for pattern in (f"part-{index:05d}-*{SPILL_SUFFIX}", f".tmp-*-part-{index:05d}-*{SPILL_SUFFIX}"):
                for p in fs.glob(f"{root}/{pattern}"):
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
        kept, drop_uids, reasons, keep = [], [], [], []
        for uid, ns, redirect, error in zip(uids, batch.column("ns").to_pylist(),
                                            batch.column("redirect").to_pylist(),
                                            batch.column("error").to_pylist()):
            reason = _drop_reason(ns, redirect, error)
            if reason:
                drop_uids.append(uid), reasons.append(reason)
            else:
                kept.append(uid)
            keep.append(not reason)
        if kept:
            self._counts.add(batch.column("cleaned").filter(pa.array(keep, pa.bool_())))
            if self._counts.rows() >= self.spill_rows:
                self._spill()
        return BatchResult(pa.table({"uid": pa.array(kept, pa.string())}), BatchResult.drops(drop_uids, reasons))

    def _spill(self) -> None:
        uni, uni_bounds, bi, bi_bounds = self._counts.drain(self.buckets)
        for kind, table, bounds in (("unigrams", uni, uni_bounds), ("bigrams", bi, bi_bounds)):
            self._write(kind, table, bounds)
        self._seq += 1

    def _write(self, kind: str, table: pa.Table, bounds: np.ndarray) -> None:
        """One IPC file whose record batch b is bucket b (``bounds``; empty buckets included)."""
        url = folders.join(self.spill_dir, kind, f"part-{self._task:05d}-{self._seq:04d}{SPILL_SUFFIX}")
        # Spills are temporary and read once by the merge: Arrow's IPC format (the in-memory
        # layout) is written many times faster than Parquet, and its file footer lets the merge
        # read one bucket's batch without reading the rest.
        whole = pa.RecordBatch.from_arrays([c.combine_chunks() for c in table.columns], schema=table.schema)
        sink = pa.BufferOutputStream()
        options = pa.ipc.IpcWriteOptions(compression=None if self.spill_compression == "none" else self.spill_compression)
        with pa.ipc.new_file(sink, table.schema, options=options) as writer:
            for bucket in range(self.buckets):
                lo, hi = int(bounds[bucket]), int(bounds[bucket + 1])
                writer.write_batch(whole.slice(lo, hi - lo))
        folders.atomic_write_bytes(url, sink.getvalue())  # the Arrow buffer itself: no copy

    def write_output(self, kept: pa.Table, out: str, index: int) -> int:
        self._spill()
        return kept.num_rows


def _drop_reason(ns: int, redirect: bool, error: str) -> str:
    """Why a page is not counted ("" when it is): only ns-0 articles that are not redirects are."""
    return "bad_xml" if error else "namespace" if ns != 0 else "redirect" if redirect else ""


def _pages_table(rows: list[wikipedia.Page]) -> pa.Table:
    """A batch of pages; ``cleaned`` is the cleaned text of the pages that are counted ("" for
    the others). Cleaning here, on the parser's strings, spares a UTF-8 round trip of the raw
    text through Arrow; the cleaned bytes go to Arrow as they come from the cleaner."""
    cleaned = [b"" if _drop_reason(p.ns, p.redirect, p.error) else wikipedia.clean_wikitext_utf8(p.text_utf8)
               for p in rows]
    return pa.table(
        [pa.array([p.uid for p in rows], pa.string()), pa.array([p.ns for p in rows], pa.int32()),
         pa.array([p.redirect for p in rows], pa.bool_()),
         pa.array(cleaned, pa.large_binary()).cast(pa.large_string()),  # checks the UTF-8
         pa.array([p.error for p in rows], pa.string())],
        schema=PAGES,
    )


# ---------------------------------------------------------------------------------------------
# Merge


class Spills:
    """The spill files of one kind, read one bucket (record batch) at a time."""

    def __init__(self, spill_dir: str, kind: str) -> None:
        self.fs, root = folders.fs_and_path(folders.join(spill_dir, kind))
        # Only finished spills: a ".tmp-..." file is a write that never reached its rename.
        exists = self.fs.exists(root)
        self.paths = sorted(self.fs.glob(f"{root}/part-*{SPILL_SUFFIX}")) if exists else []
        if exists and self.fs.glob(f"{root}/bucket=*"):
            raise ValueError(f"{root}: spills in an older layout (one folder per bucket); delete "
                             f"{spill_dir} and count again")
        self.local = "file" in self.fs.protocol
        self.buckets = 0
        self.schema = None
        for p in self.paths:
            with self._open(p) as src:
                reader = pa.ipc.open_file(src)
                n, self.schema = reader.num_record_batches, reader.schema
            if self.buckets and n != self.buckets:
                raise ValueError(f"{p}: {n} buckets, other spills of {kind} have {self.buckets} "
                                 "(spills from runs with different --buckets are mixed)")
            self.buckets = n

    def _open(self, path: str):
        return pa.memory_map(path) if self.local else self.fs.open(path, "rb")

    def bucket(self, b: int, paths: list[str] | None = None) -> tuple[pa.Table, int]:
        """Bucket ``b`` of every spill (or of ``paths``) as one table, and how many had rows in it."""
        batches = []
        for p in self.paths if paths is None else paths:
            with self._open(p) as src:
                batch = pa.ipc.open_file(src).get_batch(b)
            if batch.num_rows:
                batches.append(batch)
        return pa.Table.from_batches(batches, schema=self.schema), len(batches)

    def sums(self, keys: list[str], fold: int = FOLD) -> Iterator[pa.Table]:
        """Per bucket, the keys with their counts summed over every spill.

        Spills are added ``fold`` at a time to a running sum, so a bucket's memory is its distinct
        keys plus ``fold`` spills' share, however many tasks spilled (a dump 10x larger has ~10x
        the spills of about the same keys)."""
        for b in range(self.buckets):
            acc, seen = None, 0
            for a in range(0, len(self.paths), max(1, fold)):
                t, nonempty = self.bucket(b, self.paths[a:a + fold])
                if not nonempty:
                    continue
                seen += nonempty
                if acc is not None:
                    t = pa.concat_tables([acc, t])
                acc = t if seen == 1 else t.group_by(keys).aggregate([("count", "sum")]).rename_columns(
                    keys + ["count"])  # one spill's keys are already distinct
            if acc is not None:
                yield acc.combine_chunks()


def merge_unigrams(spill_dir: str) -> pa.Table:
    """Exact unigram counts (token, count) over every task, summed bucket by bucket."""
    parts = list(Spills(spill_dir, "unigrams").sums(["token"]))
    if not parts:
        return UNIGRAMS.empty_table()
    return pa.concat_tables(parts).cast(UNIGRAMS)


def nltk_pmi(n_ii: int, n_ix: int, n_xi: int, n_all: int) -> float:
    """NLTK's ``BigramAssocMeasures.pmi`` (base-2 logs), as BigramCollocationFinder scores it."""
    return math.log2(float(n_ii) * n_all) - math.log2(n_ix * n_xi)


def iter_bigram_buckets(spill_dir: str, unigrams: pa.Table, min_count: int = 1,
                        max_count: float | None = None) -> Iterator[pa.Table]:
    """Per bucket, the summed bigrams with ``min_count <= count <= max_count`` joined with their
    unigram counts (n1, n2); the count filter runs before the join."""
    uni = unigrams.select(["token", "count"])
    for t in Spills(spill_dir, "bigrams").sums(["w1", "w2"]):
        if min_count > 1:
            t = t.filter(pc.greater_equal(t["count"], min_count))
        if max_count is not None:
            t = t.filter(pc.less_equal(t["count"], max_count))
        if not t.num_rows:
            continue
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
    max_count = None if pmi_min is None else n_all / 2.0 ** pmi_min * (1 + 1e-9)
    for t in iter_bigram_buckets(spill_dir, unigrams, min_count, max_count):
        if pmi_min is not None and t.num_rows:
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
