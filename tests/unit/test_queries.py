"""Query builder on real inputs: enwiki dump sample, pageviews sample, NLTK's PMI, bad input."""

from __future__ import annotations

import bz2
import gzip
import xml.etree.ElementTree as ET
from collections import Counter

import pyarrow as pa
import pytest

from wit.queries import counts, pageviews, wikipedia
from wit.queries.wordnet import synset_query
from wit.runners import run_stage
from wit.text.normalize import collapse_whitespace, spaced

DUMP = "wikipedia/enwiki-pages-articles-206-pages.xml.bz2"
TABLES = "wikipedia/enwiki-table-markup-5-pages.xml.bz2"
PAGEVIEWS = "wikipedia/pageviews-20240803-060000-sample.gz"
MW = "{http://www.mediawiki.org/xml/export-0.10/}"


def _count(urls: list[str], out, parts: int = 1, spill_rows: int = 2_000_000, buckets: int = 4,
           batch_rows: int = 256):
    slices = [s for u in urls for s in wikipedia.plan_slices(u, 1, parts)]
    stage = counts.CountStage(spill_dir=str(out), buckets=buckets, spill_rows=spill_rows, batch_rows=batch_rows)
    report = run_stage(stage, [s.encode() for s in slices], str(out), progress=False)
    uni = counts.merge_unigrams(str(out))
    bi = counts.bigram_pmi(str(out), uni, None)
    return report, uni, bi


def _as_counter(uni) -> Counter:
    return Counter(dict(zip(uni["token"].to_pylist(), uni["count"].to_pylist())))


def _bigram_counter(bi) -> Counter:
    return Counter(dict(zip(zip(bi["w1"].to_pylist(), bi["w2"].to_pylist()), bi["count"].to_pylist())))


def _independent_articles(path) -> tuple[list[str], list[str]]:
    """(article texts, redirect texts) of namespace 0, read with a whole-document XML parser."""
    root = ET.fromstring(bz2.decompress(path.read_bytes()))
    articles, redirects = [], []
    for page in root.iter(f"{MW}page"):
        if page.findtext(f"{MW}ns") != "0":
            continue
        text = page.find(f"{MW}revision").findtext(f"{MW}text") or ""
        (redirects if page.find(f"{MW}redirect") is not None else articles).append(text)
    return articles, redirects


def test_real_dump_word_counts_equal_independent_count(shared_data, tmp_path):
    report, uni, _ = _count([str(shared_data / DUMP)], tmp_path / "c")
    articles, redirects = _independent_articles(shared_data / DUMP)
    assert report.n_in == 206 and report.kept == len(articles) == 106
    assert report.by_reason == {"redirect": 99, "namespace": 1}
    expected = Counter()
    for text in articles:
        expected.update(spaced(collapse_whitespace(wikipedia.clean_wikitext(text))).split())
    assert _as_counter(uni) == expected
    # Redirects contribute nothing: their one word ("REDIRECT") would otherwise be counted.
    redirect_words = Counter(w for t in redirects for w in spaced(collapse_whitespace(wikipedia.clean_wikitext(t))).split())
    assert redirect_words["REDIRECT"] >= 90 and _as_counter(uni)["REDIRECT"] == expected["REDIRECT"] < 5


def test_counts_identical_for_any_number_of_tasks_and_spills(shared_data, tmp_path):
    url = str(shared_data / DUMP)
    _, uni1, bi1 = _count([url], tmp_path / "one")
    report, uni5, bi5 = _count([url], tmp_path / "five", parts=3, spill_rows=100_000, buckets=7)
    assert report.tasks == 3
    assert _as_counter(uni1) == _as_counter(uni5)
    assert _bigram_counter(bi1) == _bigram_counter(bi5)
    assert sorted(bi1["pmi"].to_pylist()) == sorted(bi5["pmi"].to_pylist())
    # Small batches and spills: per-batch counts are merged in memory and spilled many times.
    report, uni_s, bi_s = _count([url], tmp_path / "small", parts=2, spill_rows=40_000, buckets=3, batch_rows=5)
    spills = list((tmp_path / "small" / "bigrams").rglob("*.arrow"))
    assert len({p.name for p in spills}) > 2 * report.tasks
    assert _as_counter(uni1) == _as_counter(uni_s)
    assert _bigram_counter(bi1) == _bigram_counter(bi_s)


def test_spills_on_a_remote_filesystem_and_mixed_bucket_counts(shared_data, tmp_path):
    """Spills are read bucket by bucket through fsspec too (here its in-memory filesystem)."""
    import fsspec

    url = str(shared_data / DUMP)
    _, uni1, bi1 = _count([url], tmp_path / "local", parts=2, buckets=5)
    try:
        _, uni_m, bi_m = _count([url], "memory://wit-test-spills", parts=2, buckets=5)
        assert _as_counter(uni_m) == _as_counter(uni1)
        assert _bigram_counter(bi_m) == _bigram_counter(bi1)
    finally:
        fsspec.filesystem("memory").rm("/wit-test-spills", recursive=True)
    # A spill whose writer died between writing and renaming leaves a temporary file: the merge
    # ignores it, and the task's rerun deletes it.
    local = tmp_path / "local"
    before = _as_counter(counts.merge_unigrams(str(local)))
    part = sorted((local / "unigrams").glob("part-00000-*.arrow"))[0]
    leftover = local / "unigrams" / f".tmp-0123456789ab-{part.name}"
    leftover.write_bytes(part.read_bytes())
    assert _as_counter(counts.merge_unigrams(str(local))) == before
    counts.CountStage(spill_dir=str(local), buckets=5).begin_task("", 0)
    assert not leftover.exists() and not part.exists()
    # A spill written with another number of buckets cannot be merged silently.
    stage = counts.CountStage(spill_dir=str(tmp_path / "local"), buckets=3)
    stage.begin_task("", 99)
    stage._counts.add(pa.array(["a b c"], pa.large_string()))
    stage._spill()
    with pytest.raises(ValueError, match="3 buckets, other spills of unigrams have 5"):
        counts.merge_unigrams(str(tmp_path / "local"))
    # Spills of the earlier one-folder-per-bucket layout are refused, not silently skipped.
    (tmp_path / "old" / "unigrams" / "bucket=000").mkdir(parents=True)
    with pytest.raises(ValueError, match="older layout"):
        counts.merge_unigrams(str(tmp_path / "old"))


def test_pmi_equals_nltk_bigram_collocation_finder(shared_data, tmp_path):
    from nltk.collocations import BigramAssocMeasures, BigramCollocationFinder

    url = str(shared_data / TABLES)
    _, uni, bi = _count([url], tmp_path / "c")
    # NLTK counts the same token runs: each article split at gaps where the matcher sees no bigram.
    runs = []
    for page in wikipedia.iter_pages(wikipedia.DumpSlice(url)):
        run: list[str] = []
        for part in counts.article_parts(page.text):
            if part:
                run.append(part)
            elif run:
                runs.append(run)
                run = []
    finder = BigramCollocationFinder.from_documents(runs)
    assert dict(finder.word_fd) == _as_counter(uni)
    assert dict(finder.ngram_fd) == _bigram_counter(bi)
    nltk_scores = dict(finder.score_ngrams(BigramAssocMeasures.pmi))
    ours = dict(zip(zip(bi["w1"].to_pylist(), bi["w2"].to_pylist()), bi["pmi"].to_pylist()))
    assert ours == nltk_scores  # exactly equal floats
    threshold = sorted(nltk_scores.values())[len(nltk_scores) // 2]
    kept = counts.bigram_pmi(str(tmp_path / "c"), uni, threshold)
    assert set(zip(kept["w1"].to_pylist(), kept["w2"].to_pylist())) == {
        k for k, v in nltk_scores.items() if v >= threshold}


def test_clean_wikitext_rules():
    text = (
        "'''Bold''' {{Infobox|a={{nested|x}}|b=[[y]]}}text<ref name=r>cite {{c}}</ref> more<ref name=r/>\n"
        "== Heading ==\n* item [[Paris|the capital]] and [[Lyon]]s\n"
        "[[File:X.jpg|thumb|A [[cat]] sits]] [[Category:Cats]] [[de:Katze]] [[:Category:Dogs]]\n"
        "{| class=\"wikitable\"\n|-\n| cell {{t}}\n|}\n"
        "[http://example.com Example site] <!-- hidden --> <b>kept</b>&nbsp;x &amp; y"
    )
    out = collapse_whitespace(wikipedia.clean_wikitext(text))
    assert out == "Bold text more Heading item the capital and Lyons Category:Dogs Example site kept x & y"


def test_dropped_elements_end_at_their_own_close_tag():
    text = "a<ref name=x>b <i>c</i> <refx>d</ref >e<REF>f</Ref>g<math>h<ref>i</math>j<ref>never closed"
    assert collapse_whitespace(wikipedia.clean_wikitext(text)) == "aegj never closed"


def test_link_resolution_equals_a_callback_per_innermost_link():
    """The split-based link pass equals re.sub with _link_text on each innermost link, repeated."""
    import random

    def reference(text: str) -> str:
        while True:
            text, n = wikipedia._LINK.subn(lambda m: wikipedia._link_text(m.group(1)), text)
            if not n:
                return text

    rng = random.Random(5)
    pieces = list("ab :|[] \t") + ["[[", "]]", "File:", ":", "en:", "Category:x", "|", "  ", "\n"]
    for _ in range(50_000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 16)))
        assert wikipedia._replace_links(text) == reference(text), text


def test_pageview_titles_equal_independent_computation(shared_data):
    path = shared_data / PAGEVIEWS
    for hourly_min, views_min in ((50, 70), (1, 1), (2, 5)):
        expected: dict[str, int] = {}
        with gzip.open(path, "rt", encoding="utf-8") as f:
            for line in f:
                domain, title, views, _ = line.split(" ")
                if domain == "en" and int(views) >= hourly_min and ":" not in title:
                    key = title.replace("_", " ")
                    expected[key] = expected.get(key, 0) + int(views)
        pv = pageviews.read_pageviews([str(path)], hourly_min)
        got = dict(pageviews.titles_above(pv, views_min))
        assert got == {t: v for t, v in expected.items() if v >= views_min}
    pv = pageviews.read_pageviews([str(path)], 1)
    assert pv.stats["lines"] == 1000 and pv.stats["domain_lines"] == 169
    assert pv.stats["colon_skipped"] > 0 and not any(":" in t for t in pv.views)


def test_pageviews_summed_across_files_and_bad_lines_counted(tmp_path):
    a, b = tmp_path / "a.gz", tmp_path / "b.gz"
    a.write_bytes(gzip.compress(b"en Foo_bar 60 0\nen Foo_bar 49 0\nen.m Foo_bar 500 0\nde Foo_bar 90 0\n"))
    b.write_bytes(gzip.compress(b"en Foo_bar 55 0\nen Talk:Foo 900 0\nen broken 70\nen Baz x 0\n"))
    pv = pageviews.read_pageviews([str(a), str(b)], 50)
    assert pv.views == {"Foo bar": 115}
    assert pv.stats["bad_line"] == 2 and pv.bad_positions == [f"{b}:3", f"{b}:4"]
    assert pv.stats["colon_skipped"] == 1 and pv.stats["below_hourly_min"] == 1


METACLIP_DAYS = ("20180419 20180510 20180530 20180914 20181119 20190406 20190928 20191026 20191208 20200417 "
                 "20200610 20200813 20200824 20201018 20210112 20210123 20210305 20210920 20211127 20211211 "
                 "20220116 20220322 20220430 20220529 20220618 20220829").split()


def test_metaclip_pageview_rule_over_a_day_of_hourly_files(tmp_path):
    """"en " lines only, hourly count >= 50, no ':' in the title, summed count >= 70 over all 24 hours."""
    for h in range(24):
        lines = [b"en Every_hour 50 0", b"en Under_hourly 49 0", b"en.m Mobile 900 0", b"de Every_hour 900 0",
                 b"en Talk:Page 900 0", b"en- Dash 900 0"]
        if h == 3:
            lines += [b"en Sums_to_69 69 0", b"en Sums_to_70 70 0", b"en Two_hours 50 0"]
        if h == 23:
            lines += [b"en Two_hours 50 0", b"en Sums_to_70 49 0"]
        (tmp_path / f"pageviews-20180419-{h:02d}0000.gz").write_bytes(gzip.compress(b"\n".join(lines) + b"\n"))
    pv = pageviews.read_pageviews([str(tmp_path / "pageviews-20180419-{hour}0000.gz")], 50)
    assert pv.stats["lines"] == 24 * 6 + 5 and pv.stats["truncated_gz"] == 0
    assert pageviews.titles_above(pv, 70) == [("Every hour", 1200), ("Two hours", 100), ("Sums to 70", 70)]
    assert pv.stats["colon_skipped"] == 24 and pv.stats["below_hourly_min"] == 24 + 1


def test_wit_500k_uses_metaclip_pageview_days_and_rule():
    from pathlib import Path

    from wit.config import QueriesConfig, load_yaml

    cfg = load_yaml(str(Path(__file__).parents[2] / "queries" / "wit-500k.yaml"), QueriesConfig)
    assert [u.rsplit("pageviews-", 1)[1].split("-")[0] for u in cfg.pageviews] == METACLIP_DAYS
    files = pageviews.expand_urls(cfg.pageviews)
    assert len(set(files)) == 26 * 24
    assert {f.rsplit("-", 1)[1] for f in files} == {f"{h:02d}0000.gz" for h in range(24)}
    assert (cfg.hourly_views_min, cfg.views_min) == (50, 70)


def test_truncated_pageviews_gz_keeps_the_lines_before_the_damage(tmp_path):
    import random

    rng = random.Random(5)
    lines = [f"en Title_{rng.randrange(3000)} {rng.randrange(1, 200)} 0".encode() for _ in range(60_000)]
    data = gzip.compress(b"\n".join(lines) + b"\n")
    whole, cut = tmp_path / "whole.gz", tmp_path / "cut.gz"
    whole.write_bytes(data)
    cut.write_bytes(data[: len(data) // 2])
    pv = pageviews.read_pageviews([str(cut), str(whole)], 50)
    assert pv.stats["truncated_gz"] == 1 and pv.damaged_files[0].startswith(f"{cut}:")
    read = int(pv.damaged_files[0].rsplit(":", 1)[1])
    assert 0 < read < len(lines) and pv.stats["lines"] == read + len(lines)
    expected: Counter = Counter()
    for raw in lines[:read] + lines:
        _, title, views, _ = raw.decode().split(" ")
        if int(views) >= 50:
            expected[title.replace("_", " ")] += int(views)
    assert pv.views == dict(expected)
    (tmp_path / "not.gz").write_bytes(b"en Foo 60 0\n")
    assert pageviews.read_pageviews([str(tmp_path / "not.gz")], 50).stats["truncated_gz"] == 1


def test_truncated_bz2_is_an_error_naming_file_and_position(shared_data, tmp_path):
    data = (shared_data / TABLES).read_bytes()
    bad = tmp_path / "trunc.xml.bz2"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(wikipedia.DumpError, match=r"trunc\.xml\.bz2: truncated bz2 stream.*compressed byte 0"):
        list(wikipedia.iter_pages(wikipedia.DumpSlice(str(bad))))


def test_not_xml_is_an_error(tmp_path):
    notxml = tmp_path / "notxml.xml.bz2"
    notxml.write_bytes(bz2.compress(b"just some text, not a dump\n" * 10))
    with pytest.raises(wikipedia.DumpError, match=r"notxml\.xml\.bz2: not a MediaWiki XML dump"):
        list(wikipedia.iter_pages(wikipedia.DumpSlice(str(notxml))))
    garbage = tmp_path / "garbage.xml.bz2"
    garbage.write_bytes(b"\x00\x01binary" * 100)
    with pytest.raises(wikipedia.DumpError, match=r"garbage\.xml\.bz2: no bz2 stream header at compressed byte 0"):
        list(wikipedia.iter_pages(wikipedia.DumpSlice(str(garbage))))
    corrupt = tmp_path / "corrupt.xml.bz2"
    good = bz2.compress(b"<mediawiki>" + b"<page><title>x</title></page>" * 1000 + b"</mediawiki>")
    corrupt.write_bytes(good[:40] + bytes(200) + good[240:])
    with pytest.raises(wikipedia.DumpError, match=r"corrupt\.xml\.bz2: bad bz2 data .* compressed byte 0"):
        list(wikipedia.iter_pages(wikipedia.DumpSlice(str(corrupt))))


def test_unclosed_page_and_bad_page_xml(tmp_path):
    unclosed = tmp_path / "unclosed.xml.bz2"
    unclosed.write_bytes(bz2.compress(b"<mediawiki>\n<page><title>A</title><ns>0</ns><revision><text>x"))
    with pytest.raises(wikipedia.DumpError, match=r"unclosed\.xml\.bz2: truncated XML: the page at decompressed byte 12"):
        list(wikipedia.iter_pages(wikipedia.DumpSlice(str(unclosed))))
    badpage = tmp_path / "badpage.xml.bz2"
    badpage.write_bytes(bz2.compress(
        b"<mediawiki>\n<page><title>A &bogus;</title><ns>0</ns></page>\n"
        b"<page><title>B</title><ns>0</ns><id>2</id><revision><text>hello world</text></revision></page>\n"
        b"</mediawiki>\n"))
    pages = list(wikipedia.iter_pages(wikipedia.DumpSlice(str(badpage))))
    assert pages[0].error.startswith("bad_xml") and pages[0].uid == f"{badpage}@12"
    assert (pages[1].uid, pages[1].text) == ("enwiki:2", "hello world")


def test_synset_query():
    assert synset_query("hot_dog.n.01") == "hot dog"
    assert synset_query("dog.n.01") == "dog"
    assert synset_query("st._john's_wort.n.01") == "st"  # up to the FIRST '.', as the recipe states


def test_slice_encoding_round_trips():
    for sl in (wikipedia.DumpSlice("s3://b/x#y.xml.bz2", 10, 99), wikipedia.DumpSlice("/a.bz2", 0, None, 2, 5)):
        assert wikipedia.DumpSlice.decode(sl.encode()) == sl


def test_spaced_is_the_translate_table_form():
    from wit.text import normalize

    rng = __import__("random").Random(0)
    alphabet = "ab ,.;:?!`\t\n\r(é"
    for _ in range(500):
        s = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30)))
        assert normalize.spaced(s) == " " + s.translate(normalize._TABLE) + " "


def test_merge_folds_spills_a_few_at_a_time_with_the_same_sums(tmp_path):
    import random

    rng = random.Random(3)
    root = tmp_path / "counts" / "unigrams"
    root.mkdir(parents=True)
    want: Counter = Counter()
    for s in range(7):
        buckets = []
        for b in range(3):
            c = Counter(f"w{b}-{rng.randint(0, 40)}" for _ in range(rng.randint(0, 60)))
            want.update(c)
            buckets.append(pa.record_batch([pa.array(list(c), pa.string()), pa.array(list(c.values()), pa.int64())],
                                           schema=counts.UNIGRAMS))
        with pa.OSFile(str(root / f"part-{s:05d}-0000.arrow"), "wb") as f, pa.ipc.new_file(f, counts.UNIGRAMS) as w:
            for batch in buckets:
                w.write_batch(batch)
    spills = counts.Spills(str(tmp_path / "counts"), "unigrams")
    for fold in (1, 2, 3, 100):
        got: Counter = Counter()
        for t in spills.sums(["token"], fold=fold):
            assert len(set(t["token"].to_pylist())) == t.num_rows  # summed: each key once per bucket
            got.update(dict(zip(t["token"].to_pylist(), t["count"].to_pylist())))
        assert got == want, fold


# ---------------------------------------------------------------------------------------------
# The two bz2 decoders: indexed_bzip2 (fast) and the stdlib's (the reference, which names faults)


def _multistream(tmp_path, n_streams: int = 6, words: int = 80_000):
    """A generated dump of ``n_streams`` bz2 streams (a few MB of XML) and its stream offsets."""
    import random

    rng = random.Random(7)
    vocab = [f"w{i}é" for i in range(500)]
    blob, offsets = bytearray(), []
    for s in range(n_streams):
        offsets.append(len(blob))
        body = " ".join(rng.choice(vocab) for _ in range(words))
        xml = (b"<mediawiki>\n" if s == 0 else b"") + (
            f"<page><title>P{s}</title><ns>0</ns><id>{s + 1}</id><revision><text>{body}</text>"
            "</revision></page>\n").encode()
        blob += bz2.compress(xml)
    path = tmp_path / "multi.xml.bz2"
    path.write_bytes(bytes(blob))
    return path, offsets


def _slices(path, offsets):
    bounds = offsets + [None]
    return [wikipedia.DumpSlice(str(path))] + [
        wikipedia.DumpSlice(str(path), bounds[k], bounds[k + 2] if k + 2 < len(bounds) else None)
        for k in range(0, len(offsets), 2)]


def test_fast_decoder_gives_the_stdlib_bytes_on_every_slice(tmp_path, monkeypatch):
    assert wikipedia.indexed_bzip2 is not None  # a dependency: the fast path is the one in use
    path, offsets = _multistream(tmp_path)
    opened = []
    real_open = wikipedia.indexed_bzip2.open
    monkeypatch.setattr(wikipedia.indexed_bzip2, "open", lambda *a, **k: opened.append(1) or real_open(*a, **k))
    slices = _slices(path, offsets)
    fast = [b"".join(wikipedia.decompressed_chunks(sl)) for sl in slices]
    assert len(opened) == len(slices)
    reference = [b"".join(wikipedia._libbz2_chunks(sl)) for sl in slices]
    assert fast == reference and len(fast[0]) > 2 * wikipedia.CHUNK
    # a dump on a remote filesystem (fsspec's memory one): the decoder reads it through the same file view
    import fsspec

    remote = "memory://wit-test-dumps/multi.xml.bz2"
    with fsspec.open(remote, "wb") as f:
        f.write(path.read_bytes())
    try:
        far = [wikipedia.DumpSlice(remote, sl.start, sl.end) for sl in slices]
        assert [b"".join(wikipedia.decompressed_chunks(sl)) for sl in far] == reference
        assert len(opened) == 2 * len(slices)
    finally:
        fsspec.filesystem("memory").rm("/wit-test-dumps", recursive=True)
    monkeypatch.setattr(wikipedia, "indexed_bzip2", None)
    assert [b"".join(wikipedia.decompressed_chunks(sl)) for sl in slices] == reference


def test_stdlib_decoder_takes_over_at_the_byte_reached(tmp_path, monkeypatch):
    path, _ = _multistream(tmp_path)
    sl = wikipedia.DumpSlice(str(path))
    want = b"".join(wikipedia._libbz2_chunks(sl))
    real = wikipedia._fast_chunks
    for stop_after in (0, 1, 7):
        def failing(sl, n=stop_after):  # pieces of 300,001 bytes: stops fall inside the reference's chunks
            whole = b"".join(real(sl))
            for k in range(n):
                yield whole[k * 300_001:(k + 1) * 300_001]
            raise RuntimeError("simulated decoder fault")
        monkeypatch.setattr(wikipedia, "_fast_chunks", failing)
        assert b"".join(wikipedia.decompressed_chunks(sl)) == want


def test_trailing_bytes_after_the_last_stream_are_an_error(tmp_path):
    path, _ = _multistream(tmp_path, n_streams=2, words=2000)
    bad = tmp_path / "trailing.xml.bz2"
    bad.write_bytes(path.read_bytes() + b"not bz2 at all")
    with pytest.raises(wikipedia.DumpError, match=r"trailing\.xml\.bz2: 14 trailing bytes at compressed byte \d+"):
        list(wikipedia.decompressed_chunks(wikipedia.DumpSlice(str(bad))))


def test_an_abandoned_page_reader_lets_the_process_exit_cleanly(tmp_path):
    import subprocess
    import sys

    path, _ = _multistream(tmp_path, n_streams=2)
    script = ("import sys\nfrom wit.queries import wikipedia\n"
              "g = wikipedia.iter_pages(wikipedia.DumpSlice(sys.argv[1]))\n"
              "print(next(g).title)\nKEEP = [g]\n")  # still open at exit: its reader thread runs
    done = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout) == (0, "P0\n"), done.stderr


# ---------------------------------------------------------------------------------------------
# Page parsing: the XML parser reads the page without its wikitext where the wikitext's bytes can
# be taken as they are; every page gives what the parser gives on the whole page.


def _page_xml(text: bytes, text_tag: bytes = b'<text bytes="9" xml:space="preserve">', rest: bytes = b"") -> bytes:
    return (b"<page><title>T &amp; U</title><ns>0</ns><id>7</id>" + rest +
            b"<revision><id>1</id>" + text_tag + text + b"</text><sha1>x</sha1></revision></page>")


PLAIN_TEXTS = [b"", b"hello", b"a &lt;ref&gt; &amp;nbsp; &quot;q&quot; &apos;s&apos; ] ]> >",
               "日本語 é \u00a0 \U0001F600 \u2028".encode(), b"tab\tand\nnewline", b"]]", b"a]>"]
HOSTILE_TEXTS = [b"&#38;", b"&#x26;amp;", b"&nbsp;", b"& alone", b"&amp", b"a\rb", b"a\r\nb", b"]]>", b"x]]>y",
                 b"<b>", b"\x01", b"\x7f", b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xef\xbf\xbe", b"\xef\xbf\xbf",
                 b"\xf4\x90\x80\x80", b"\xc0\xaf", b"\xe0\x80\xaf", b"<![CDATA[x]]>", b"<!-- c -->"]


def test_page_parse_takes_the_wikitext_bytes_only_where_the_parser_would_give_them(monkeypatch):
    if wikipedia._wikiclean is None:
        pytest.skip("the compiled cleaner is not built here (make setup builds it)")
    fed = []
    real_fromstring = wikipedia.ET.fromstring
    monkeypatch.setattr(wikipedia.ET, "fromstring", lambda data: fed.append(data) or real_fromstring(data))
    for text in PLAIN_TEXTS:
        data = _page_xml(text)
        fed.clear()
        page = wikipedia.parse_page(data, "u")
        assert fed == [data.replace(text, b"", 1)] if text else fed == [data]  # one parse, without the text
        assert page == wikipedia.parse_page_reference(data, "u") and not page.error
    pages = [_page_xml(t) for t in HOSTILE_TEXTS] + [
        _page_xml(b"", b"<text/>").replace(b"</text>", b""), _page_xml(b"", b'<text bytes="0" />').replace(b"</text>", b""),
        _page_xml(b"x", b"<textual>"),
        _page_xml(b"x", b'<text a="1>2">'),
        _page_xml(b"x", rest=b"<revision><text>older</text></revision>"),  # two revisions: the last one's
        _page_xml(b"x", rest=b"<!-- <text>in a comment</text> -->"),
        _page_xml(b"x", rest=b"<note><text>not the revision's</text></note>"),
        _page_xml(b"x", rest=b"<ns>&bogus;</ns>"),  # a fault outside the text: the whole page's message
        _page_xml(b"x").replace(b"</page>", b""),
        b"<!DOCTYPE page [<!ENTITY e 'E'>]>" + _page_xml(b"&e;"),
    ]
    for data in pages:
        assert wikipedia.parse_page(data, "u") == wikipedia.parse_page_reference(data, "u"), data
    errors = [wikipedia.parse_page(d, "u").error for d in pages]
    assert sum(e.startswith("bad_xml") for e in errors) == 18  # the refused bytes, as the parser refuses them


def test_page_parse_equals_the_whole_page_parse_on_real_dumps(shared_data):
    import re

    n = 0
    for name in (DUMP, TABLES):
        data = bz2.decompress((shared_data / name).read_bytes())
        for m in re.finditer(rb"<page>.*?</page>", data, re.S):
            assert wikipedia.parse_page(m.group(0), "u") == wikipedia.parse_page_reference(m.group(0), "u")
            n += 1
    assert n == 211
