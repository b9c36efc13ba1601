"""Query build end to end on a generated multistream mini-Wikipedia: thresholds, budget, dedup.

wit.world's mini-Wikipedia was not available when this was written, so the dump is built here
in the real schema: bz2 multistream (header stream, 3-page streams, footer) plus its index.
"""

from __future__ import annotations

import bz2
import gzip
import json
import math
import random
from collections import Counter
from pathlib import Path
from xml.sax.saxutils import escape

import pyarrow.parquet as pq
import pytest

from wit.config import QueriesConfig, RunSpec, load_yaml
from wit.queries import counts, wikipedia
from wit.queries.build import build_queries

ROOT = Path(__file__).resolve().parents[2]
HEADER = (b'<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.10/" version="0.10" xml:lang="en">\n'
          b"  <siteinfo><sitename>Mini</sitename></siteinfo>\n")


def _page(pid: int, title: str, text: str, ns: int = 0, redirect: str | None = None) -> bytes:
    red = f'<redirect title="{escape(redirect)}" />' if redirect else ""
    return (f"  <page>\n    <title>{escape(title)}</title>\n    <ns>{ns}</ns>\n    <id>{pid}</id>\n    {red}\n"
            f"    <revision><id>{pid * 10}</id><model>wikitext</model>"
            f'<text xml:space="preserve">{escape(text)}</text></revision>\n  </page>\n').encode()


def write_mini_wiki(root: Path, n_pages: int = 40, seed: int = 0) -> tuple[Path, list[str]]:
    """A multistream dump + index; returns (dump path, each article's body words).

    Article k's cleaned text is ``BODY. End``: spaced, that is ``BODY .  End``, so the bigram
    (last word, ".") is findable by the matcher and (".", "End") is not.
    """
    rng = random.Random(seed)
    vocab = [f"w{i}" for i in range(60)] + ["Alpha", "Beta", "red fox", "New York"]
    pages, texts = [], []
    for pid in range(1, n_pages + 1):
        words = [rng.choice(vocab[: 5 + pid % 55]) for _ in range(rng.randint(20, 60))]
        body = " ".join(words)
        texts.append(body)
        pages.append((pid, f"Page {pid}", f"'''{body}'''. [[End]]{{{{cite|x y}}}}"))
    pages.append((n_pages + 1, "Redirected", "#REDIRECT [[Page 1]] zzzredirectword"))
    pages.append((n_pages + 2, "Talk:Page 1", "zzztalkword zzztalkword"))
    dump = root / "miniwiki-20240101-pages-articles-multistream.xml.bz2"
    blob, index = bytearray(bz2.compress(HEADER)), []
    for k in range(0, len(pages), 3):
        off = len(blob)
        chunk = b""
        for pid, title, text in pages[k:k + 3]:
            ns = 1 if title.startswith("Talk:") else 0
            chunk += _page(pid, title, text, ns, "Page 1" if title == "Redirected" else None)
            index.append(f"{off}:{pid}:{title}")
        blob += bz2.compress(chunk)
    blob += bz2.compress(b"</mediawiki>\n")
    dump.write_bytes(bytes(blob))
    (root / "miniwiki-20240101-pages-articles-multistream-index.txt.bz2").write_bytes(
        bz2.compress(("\n".join(index) + "\n").encode()))
    return dump, texts


def write_pageviews(root: Path) -> list[Path]:
    out = []
    for h, lines in enumerate([["en Page_1 80 0", "en Page_2 50 0", "en Page_3 49 0", "en File:X.jpg 500 0",
                                "en.m Page_4 900 0", "de Page_5 900 0", "en w3 100 0"],
                               ["en Page_2 30 0", "en Page_2 51 0", "en Page_6 69 0", "en Page_1 0 0"]]):
        p = root / f"pageviews-20240101-0{h}0000.gz"
        p.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode()))
        out.append(p)
    return out


@pytest.fixture
def mini(tmp_path):
    dump, texts = write_mini_wiki(tmp_path)
    return dump, texts, write_pageviews(tmp_path)


def _read(out: Path):
    return pq.read_table(out / "queries.parquet"), json.loads((out / "provenance.json").read_text())


def test_multistream_slices_use_the_index_and_agree(mini, tmp_path):
    dump, texts, _ = mini
    offsets = wikipedia.stream_offsets(str(dump))
    assert len(offsets) == 1 + math.ceil(42 / 3) and offsets[0] == 0
    for target in (1, 10_000, 1 << 30):
        slices = wikipedia.plan_slices(str(dump), target)
        pages = [p for s in slices for p in wikipedia.iter_pages(s)]
        assert [p.uid for p in pages] == [f"enwiki:{i}" for i in range(1, 43)]
    assert len(wikipedia.plan_slices(str(dump), 1)) == len(offsets)


def test_generated_wiki_thresholds_budget_and_dedup(mini, tmp_path):
    dump, texts, pv = mini
    cfg = QueriesConfig(wikipedia=[str(dump)], pageviews=[str(p) for p in pv], wordnet=False,
                        unigram_min=30, pmi_min=4.0, views_min=70, task_mb=1e-5)
    prov = build_queries(cfg, str(tmp_path / "q"), progress=False)
    table, saved = _read(tmp_path / "q")
    rows = table.to_pylist()
    assert prov == saved and prov["wikipedia"]["tasks"] > 5
    assert prov["wikipedia"]["pages_dropped"] == {"namespace": 1, "redirect": 1}
    queries = [r["query"] for r in rows]
    assert len(queries) == len(set(queries)) and [r["query_id"] for r in rows] == list(range(len(rows)))
    assert queries[:100] == [str(i) for i in range(100)]
    # Unigrams: exactly the tokens counted >= 30 times in the articles (independently recounted).
    tok, big = Counter(), Counter()
    for body in texts:
        words = body.split() + ["."]
        tok.update(words + ["End"])
        big.update(zip(words, words[1:]))
    uni = {r["query"]: r["score"] for r in rows if r["source"] == "unigram"}
    assert set(uni) == {t for t, n in tok.items() if n >= 30 and t != "."}
    assert all(uni[t] == tok[t] for t in uni)
    assert "zzzredirectword" not in tok and "zzztalkword" not in queries
    # Bigrams: PMI >= 4 exactly, each with its NLTK score.
    bi = [r for r in rows if r["source"] == "bigram"]
    assert bi and all(r["score"] >= 4.0 for r in bi)
    n_all = sum(tok.values())
    expected_bi = {f"{a} {b}" for (a, b), c in big.items() if counts.nltk_pmi(c, tok[a], tok[b], n_all) >= 4.0}
    assert {r["query"] for r in bi} == expected_bi
    # Titles: en domain, hourly >= 50 summed across files, ':' skipped, views >= 70.
    assert {(r["query"], r["score"]) for r in rows if r["source"] == "title"} == {("Page 1", 80.0), ("Page 2", 101.0)}
    assert prov["sources"]["title"]["candidates"] == 3 and prov["sources"]["title"]["duplicates"] == 1  # "w3"
    # Budget: the list stops at the budget, in source order.
    small = build_queries(cfg.model_copy(update={"budget": 120}), str(tmp_path / "q2"), progress=False)
    t2, _ = _read(tmp_path / "q2")
    assert t2.num_rows == 120 and small["sources"]["bigram"]["over_budget"] == len(bi)
    assert t2.column("query").to_pylist() == queries[:120]


def test_tasks_and_buckets_do_not_change_the_result(mini, tmp_path):
    dump, _, pv = mini
    base = dict(wikipedia=[str(dump)], pageviews=[str(p) for p in pv], wordnet=False, unigram_min=5, pmi_min=2.0)
    build_queries(QueriesConfig(**base, task_mb=1024), str(tmp_path / "a"), progress=False)
    prov = build_queries(QueriesConfig(**base, task_mb=1e-6, buckets=5, spill_rows=50), str(tmp_path / "b"),
                         progress=False)
    assert prov["wikipedia"]["tasks"] == 15
    assert _read(tmp_path / "a")[0].equals(_read(tmp_path / "b")[0])


def test_cli_flags_override_the_spec(mini, tmp_path):
    from wit.cli import main

    dump, _, pv = mini
    spec = tmp_path / "spec.yaml"
    spec.write_text(f"wikipedia: [{dump}]\npageviews: [{pv[0]}]\nwordnet: false\nunigram_min: 1000\nbudget: 400\n")
    rc = main(["queries", "build", "--out", str(tmp_path / "q"), "--spec", str(spec), "--unigram-min", "30",
               "--budget", "110", "--no-progress"])
    table, prov = _read(tmp_path / "q")
    assert rc == 0 and table.num_rows == 110 and prov["thresholds"]["unigram_min"] == 30
    assert prov["sources"]["unigram"]["kept"] > 0


def test_specs_load_and_demo_thresholds_agree_with_the_demo_pipeline():
    demo = load_yaml(ROOT / "queries" / "demo.yaml", QueriesConfig)
    full = load_yaml(ROOT / "queries" / "wit-500k.yaml", QueriesConfig)
    pipeline = load_yaml(ROOT / "pipelines" / "demo.yaml", RunSpec).queries
    keys = ("unigram_min", "pmi_min", "bigram_min_count", "views_min", "hourly_views_min", "budget")
    assert {k: getattr(demo, k) for k in keys} == {k: getattr(pipeline, k) for k in keys}
    assert (full.unigram_min, full.pmi_min, full.views_min, full.budget) == (100, 30.0, 70, 500_000)
    assert len(full.pageviews) == 26 and all("{hour}" in u for u in full.pageviews)
    assert full.wikipedia[0].startswith("https://dumps.wikimedia.org/enwiki/")


@pytest.mark.ray
def test_ray_counting_equals_local(mini, tmp_path, ray_session):
    dump, _, pv = mini
    cfg = QueriesConfig(wikipedia=[str(dump)], wordnet=False, unigram_min=5, pmi_min=2.0, task_mb=1e-5)
    build_queries(cfg, str(tmp_path / "local"), progress=False)
    build_queries(cfg, str(tmp_path / "ray"), runner="ray", workers=2, progress=False)
    assert _read(tmp_path / "local")[0].equals(_read(tmp_path / "ray")[0])


@pytest.mark.slow
def test_wordnet_names():
    from wit.queries.wordnet import synset_names

    names = dict(synset_names())
    assert len(names) > 80_000 and names["dog"] == 2 and "living thing" in names  # dog.n.01, dog.n.03
    assert all("_" not in n and "." not in n for n in names)


def test_world_mini_wikipedia(tmp_path):
    """The generated mini-web's own dump (wit.world): thresholds, budget, no duplicates, any slicing."""
    world = pytest.importorskip("wit.world").generate(tmp_path / "w", size="tiny", seed=0)
    base = dict(wikipedia=[str(p) for p in world.wiki_dumps], pageviews=[str(p) for p in world.pageviews],
                wordnet=False, unigram_min=5, pmi_min=3.0, bigram_min_count=3, views_min=70)
    prov = build_queries(QueriesConfig(**base, task_mb=0.005), str(tmp_path / "a"), progress=False)
    build_queries(QueriesConfig(**base, task_mb=1024), str(tmp_path / "b"), progress=False)
    a, b = _read(tmp_path / "a")[0], _read(tmp_path / "b")[0]
    assert prov["wikipedia"]["tasks"] > 1 and a.equals(b)
    rows = a.to_pylist()
    assert len({r["query"] for r in rows}) == len(rows)
    assert all(r["score"] >= 5 for r in rows if r["source"] == "unigram")
    assert all(r["score"] >= 3.0 for r in rows if r["source"] == "bigram")
    assert all(r["score"] >= 70 for r in rows if r["source"] == "title")
    assert {r["source"] for r in rows} == {"digits", "unigram", "bigram", "title"}
    budget = prov["queries"] - 7
    cut = build_queries(QueriesConfig(**base, budget=budget), str(tmp_path / "c"), progress=False)
    assert cut["queries"] == budget and _read(tmp_path / "c")[0].column("query").to_pylist() == [
        r["query"] for r in rows[:budget]]


def test_single_characters_dropped_only_for_ascii_punctuation():
    import string

    from wit.queries.build import Candidates, combine

    singles = list(string.punctuation) + ["–", "—", "−", "·", "a", "7", "é", "€"]
    table, stats = combine(Candidates({"unigram": [(c, 1.0) for c in singles]}), budget=1000)
    assert table.column("query").to_pylist() == ["–", "—", "−", "·", "a", "7", "é", "€"]
    assert stats["unigram"]["punctuation"] == len(string.punctuation) == 32


def test_budget_cut_or_whole_sources():
    from wit.queries.build import Candidates, combine

    cands = Candidates({"digits": [(str(i), 0.0) for i in range(6)], "unigram": [("u1", 9.0), ("u2", 8.0), ("5", 1.0)],
                        "title": [("t1", 80.0), ("t2", 70.0)]})
    cut, st = combine(cands, budget=7)
    assert cut.column("query").to_pylist() == ["0", "1", "2", "3", "4", "5", "u1"]
    assert (st["unigram"]["over_budget"], st["title"]["over_budget"], st["unigram"]["duplicates"]) == (1, 2, 1)
    whole, st = combine(cands, budget=7, budget_mode="whole")
    assert whole.column("query").to_pylist() == ["0", "1", "2", "3", "4", "5", "u1", "u2", "t1", "t2"]
    assert whole.column("query_id").to_pylist() == list(range(10))
    assert (st["unigram"]["past_budget"], st["title"]["past_budget"], st["title"]["over_budget"]) == (1, 2, 0)
    assert load_yaml(ROOT / "queries" / "wit-500k.yaml", QueriesConfig).budget_mode == "cut"
