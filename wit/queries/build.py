"""Build the query list (CLIP footnote 1 as MetaCLIP reconstructs it) into OUT/queries.parquet.

Order of the combined list: the strings "0".."99", WordNet synset names, Wikipedia unigrams
(count >= unigram_min), bigrams (PMI >= pmi_min), pageview titles (views >= views_min). Single
ASCII punctuation characters are excluded, a string already listed is a duplicate, and the list
stops at ``budget`` (budget_mode "cut"; "whole" adds every source whole, as MetaCLIP's script
does, and only reports the entries past the budget). OUT/provenance.json records inputs (size,
sha256), thresholds, per-source counts before and after dedup, and timings.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass, field
from typing import Iterable

import pyarrow as pa
import pyarrow.compute as pc

from wit import schemas
from wit.config import QueriesConfig
from wit.io import folders
from wit.queries import counts, pageviews, wikipedia
from wit.queries.validate import check_unique
from wit.text.normalize import is_single_punctuation

log = logging.getLogger(__name__)

SOURCES = ("digits", "wordnet", "unigram", "bigram", "title")


@dataclass
class Candidates:
    """The scored strings of each source, in source order, before dedup."""

    by_source: dict[str, list[tuple[str, float]]] = field(default_factory=dict)


def file_info(url: str) -> dict:
    """Size and sha256 of an input file (streamed)."""
    fs, path = folders.fs_and_path(url)
    h = hashlib.sha256()
    with fs.open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            h.update(chunk)
    return {"url": url, "bytes": fs.size(path), "sha256": h.hexdigest()}


def combine(cands: Candidates, budget: int, budget_mode: str = "cut") -> tuple[pa.Table, dict]:
    """Merge the sources in SOURCES order: drop single punctuation and duplicates, stop at budget.

    ``budget_mode`` "whole" keeps every source whole; ``past_budget`` counts the entries beyond it.
    """
    seen: set[str] = set()
    queries, sources, scores = [], [], []
    stats: dict[str, dict[str, int]] = {}
    for src in SOURCES:
        items = cands.by_source.get(src, [])
        st = stats[src] = {"candidates": len(items), "punctuation": 0, "duplicates": 0, "kept": 0,
                           "over_budget": 0, "past_budget": 0}
        for q, score in items:
            if not q or is_single_punctuation(q):
                st["punctuation"] += 1
            elif q in seen:
                st["duplicates"] += 1
            elif len(queries) >= budget and budget_mode == "cut":
                st["over_budget"] += 1
            else:
                st["past_budget"] += len(queries) >= budget
                seen.add(q)
                queries.append(q), sources.append(src), scores.append(float(score))
                st["kept"] += 1
    table = pa.table([pa.array(range(len(queries)), pa.int32()), pa.array(queries, pa.string()),
                      pa.array(sources, pa.string()), pa.array(scores, pa.float64())], schema=schemas.QUERIES)
    return table, stats


def count_wikipedia(cfg: QueriesConfig, out: str, runner_kwargs: dict) -> tuple[pa.Table, pa.Table, dict]:
    """Run the counting stage over every dump slice; return (unigrams, scored bigrams, stats)."""
    from wit.runners import run_stage

    slices = [s for url in cfg.wikipedia
              for s in wikipedia.plan_slices(url, int(cfg.task_mb * (1 << 20)), cfg.stride_parts)]
    spill = folders.join(out, "counts")
    stage = counts.CountStage(spill_dir=spill, buckets=cfg.buckets, spill_rows=cfg.spill_rows,
                              spill_compression=cfg.spill_compression, batch_rows=cfg.batch_rows)
    kwargs = dict(runner_kwargs)
    kwargs["ledger_dir"] = None  # pages are not candidates: their fates are counted in the markers
    t0 = time.perf_counter()
    report = run_stage(stage, [s.encode() for s in slices], spill, **kwargs)
    t1 = time.perf_counter()
    uni = counts.merge_unigrams(spill)
    bigrams = counts.bigram_pmi(spill, uni, cfg.pmi_min, cfg.bigram_min_count)
    stats = {
        "tasks": len(slices),
        "pages": report.n_in,
        "articles": report.kept,
        "pages_dropped": report.by_reason,
        "tokens": int(pc.sum(uni["count"]).as_py() or 0),
        "distinct_unigrams": uni.num_rows,
        "seconds_count": round(t1 - t0, 3),
        "seconds_merge": round(time.perf_counter() - t1, 3),
    }
    return uni, bigrams, stats


def _sorted_desc(keys: Iterable[str], scores: Iterable[float]) -> list[tuple[str, float]]:
    return sorted(zip(keys, scores), key=lambda ks: (-ks[1], ks[0]))


def build_queries(cfg: QueriesConfig, out: str, runner: str = "local", address: str | None = None,
                  workers: int | None = None, progress: bool = True, ledger_dir: str | None = None) -> dict:
    """Build OUT/queries.parquet and OUT/provenance.json from ``cfg``; return the provenance."""
    t_start = time.perf_counter()
    folders.makedirs(out)
    timings: dict[str, float] = {}
    cands = Candidates({"digits": [(str(i), 0.0) for i in range(100)]})
    extra: dict = {}

    if cfg.wordnet:
        t = time.perf_counter()
        from wit.queries import wordnet

        cands.by_source["wordnet"] = [(q, float(n)) for q, n in wordnet.synset_names()]
        timings["wordnet"] = round(time.perf_counter() - t, 3)

    if cfg.wikipedia:
        uni, bi, extra["wikipedia"] = count_wikipedia(
            cfg, out, dict(runner=runner, address=address, workers=workers, progress=progress))
        timings["wikipedia_count"] = extra["wikipedia"].pop("seconds_count")
        timings["wikipedia_merge"] = extra["wikipedia"].pop("seconds_merge")
        keep = uni.filter(pc.greater_equal(uni["count"], cfg.unigram_min))
        cands.by_source["unigram"] = _sorted_desc(keep["token"].to_pylist(), keep["count"].to_pylist())
        cands.by_source["bigram"] = _sorted_desc(
            [a + " " + b for a, b in zip(bi["w1"].to_pylist(), bi["w2"].to_pylist())], bi["pmi"].to_pylist())

    if cfg.pageviews:
        t = time.perf_counter()
        pv = pageviews.read_pageviews(cfg.pageviews, cfg.hourly_views_min)
        cands.by_source["title"] = [(q, float(v)) for q, v in pageviews.titles_above(pv, cfg.views_min)]
        extra["pageviews"] = {**pv.stats, "titles_summed": len(pv.views), "bad_positions": pv.bad_positions,
                              "damaged_files": pv.damaged_files}
        timings["pageviews"] = round(time.perf_counter() - t, 3)

    t = time.perf_counter()
    table, per_source = combine(cands, cfg.budget, cfg.budget_mode)
    check_unique(table.column("query").to_pylist(), table.column("query_id").to_pylist(), "queries: built list")
    folders.write_parquet(folders.join(out, "queries.parquet"), table)
    timings["combine"] = round(time.perf_counter() - t, 3)

    t = time.perf_counter()
    inputs = {"wikipedia": [file_info(u) for u in cfg.wikipedia],
              "wikipedia_index": [file_info(i) for u in cfg.wikipedia if (i := wikipedia.index_url(u))],
              "pageviews": [file_info(u) for u in pageviews.expand_urls(cfg.pageviews)],
              "wordnet": _wordnet_version() if cfg.wordnet else None}
    timings["checksums"] = round(time.perf_counter() - t, 3)
    timings["total"] = round(time.perf_counter() - t_start, 3)
    provenance = {
        "queries": table.num_rows,
        "thresholds": {k: getattr(cfg, k) for k in ("unigram_min", "pmi_min", "bigram_min_count", "views_min",
                                                    "hourly_views_min", "budget", "budget_mode")},
        "pmi": "NLTK BigramAssocMeasures.pmi: log2(count * N) - log2(count(w1) * count(w2)), N = total tokens",
        "order": list(SOURCES),
        "sources": per_source,
        "inputs": inputs,
        "runner": runner,
        "timings": timings,
        **extra,
    }
    folders.write_json(folders.join(out, "provenance.json"), provenance)
    log.info("queries: %d (%s)", table.num_rows, {s: v["kept"] for s, v in per_source.items()})
    return provenance


def _wordnet_version() -> dict:
    from nltk.corpus import wordnet as wn

    return {"corpus": "nltk wordnet", "version": wn.get_version()}
