"""Matching semantics (MetaCLIP), the match stage over parts with cross-file duplicates, exact counts."""

from __future__ import annotations

import random

import pyarrow as pa
import pytest

from tests.helpers import make_candidates
from wit import schemas
from wit.io import folders, ledger
from wit.match.counts import entry_counts
from wit.match.matcher import Matcher
from wit.match.job import match_folder
from wit.records import candidate_uid
from wit.text.normalize import entry_key, spaced

ENTRIES = ["hot", "hot dog", "dog", "Dog", "dog's", "a", "New York", "York", "city", "café", "東京", "end here",
           "red", "3", "e.g", "U.S.", "you?"]


def _naive(entries, text):
    s = spaced(text)
    return sorted({i for i, e in enumerate(entries) if e and entry_key(e) in s})


@pytest.fixture(scope="module", params=["tokens", "ahocorasick_rs", "pyahocorasick"])
def matcher(request):
    return Matcher(ENTRIES, backend=request.param)


def names(m, text):
    return {ENTRIES[i] for i in m.match(text)}


def test_overlapping_entries_all_match(matcher):
    assert names(matcher, "a hot dog") == {"a", "hot", "hot dog", "dog"}


def test_punctuation_padding_and_controls(matcher):
    assert names(matcher, "dog,hot!") == {"dog", "hot"}
    assert names(matcher, "hot\tdog\n") == {"hot", "dog", "hot dog"}
    assert names(matcher, "red:dog;") == {"red", "dog"}
    # '-' and '/' are not padded, so "hot-dog" holds no entry; "you?" can never match (the '?' is padded).
    assert names(matcher, "hot-dog / you?") == set()


def test_case_sensitive_and_possessive(matcher):
    assert names(matcher, "Dog") == {"Dog"}
    assert names(matcher, "HOT DOG") == set()
    assert names(matcher, "the dog's bowl") == {"dog's"}


def test_multi_word_entries_at_start_and_end_and_non_ascii(matcher):
    assert names(matcher, "New York city") == {"New York", "York", "city"}
    assert names(matcher, "we end here") == {"end here"}
    assert names(matcher, "café in 東京") == {"café", "東京"}
    assert names(matcher, "cafés") == set()


def test_batch_equals_the_definition_on_random_texts(matcher):
    rng = random.Random(1)
    alphabet = ["hot", "dog", "Dog", "dog's", "a", "New", "York", "city", "café", "東京", "end", "here", ",", ".",
                "?", "!", " ", "  ", "\t", "3", "e.g", "U.S.", "x"]
    texts = ["".join(rng.choice(alphabet) + rng.choice([" ", "", "."]) for _ in range(rng.randint(0, 12)))
             for _ in range(2000)]
    got = matcher.match_batch(texts).to_pylist()
    assert got == [_naive(ENTRIES, t) for t in texts]
    assert matcher.match_batch([]).to_pylist() == []
    assert matcher.match_batch(["hot\x00dog"]).to_pylist() == [_naive(ENTRIES, "hot\x00dog")]


@pytest.mark.parametrize("backend", ["tokens", "ahocorasick_rs", "pyahocorasick"])
def test_multi_word_entries_sharing_prefixes_and_odd_spacing(backend):
    # Shared prefixes and deep entries (the tokens backend walks a word trie), entries with a
    # leading, trailing or doubled space, duplicates and entries that can never match.
    entries = ["a b", "a b c", "a b c d e", "b c", "b c d", "c", "a", " a", "a ", "a  b", " ", "  ", "b c",
               ", b", "a ,", "", "x\ty", "d e", "a b c d"]
    rng = random.Random(2)
    alphabet = ["a", "b", "c", "d", "e", ",", " ", "  ", "\n", "x"]
    texts = ["".join(rng.choice(alphabet) + rng.choice([" ", "", " "]) for _ in range(rng.randint(0, 14)))
             for _ in range(3000)] + ["", " ", "a b c d e", "a  b", " a", "a b c d e f a b"]
    m = Matcher(entries, backend=backend)
    want = [sorted({i for i, e in enumerate(entries) if e and "\t" not in e and entries.index(e) == i
                    and entry_key(e) in spaced(t)}) for t in texts]
    assert m.match_batch(texts).to_pylist() == want
    assert m.match("a b c d e") == [0, 1, 2, 3, 4, 5, 6, 17, 18]


@pytest.mark.parametrize("backend", ["tokens", "ahocorasick_rs", "pyahocorasick"])
def test_words_of_every_length_and_byte_width(backend):
    # The tokens backend keys words of up to 15 UTF-8 bytes exactly and looks longer ones up by
    # string: words of 0-40 bytes, ASCII and multi-byte, near misses that differ in one byte at
    # any position, prefixes of entry words, and a lone surrogate.
    rng = random.Random(3)
    chars = ["a", "b", "é", "東", "\U0001f600", "\udc80"]
    words = ["".join(rng.choice(chars) for _ in range(rng.randint(1, 16))) for _ in range(200)]
    words += ["x" * n for n in range(1, 41)]
    entries = list(dict.fromkeys(words[:150] + [f"{a} {b}" for a, b in zip(words[:60], words[60:120])]))
    near = [w[:k] + ("b" if w[k] != "b" else "a") + w[k + 1:] for w in words for k in (0, len(w) // 2, len(w) - 1)]
    pool = words + near + [w[:-1] for w in words] + [w + "a" for w in words]
    texts = [" ".join(rng.choice(pool) for _ in range(rng.randint(0, 10))) for _ in range(1500)]
    got = Matcher(entries, backend=backend).match_batch(texts).to_pylist()
    assert got == [_naive(entries, t) for t in texts]
    assert sum(map(len, got)) > 1000


def test_ids_are_query_ids_and_pickle_rebuilds():
    import pickle

    m = Matcher(["dog", "hot dog"], ids=[70, 12])
    assert m.match("a hot dog") == [12, 70]
    assert pickle.loads(pickle.dumps(m)).match("a hot dog") == [12, 70]


def _queries(tmp_path, entries):
    path = str(tmp_path / "queries.parquet")
    folders.write_parquet(path, pa.table({"query_id": pa.array(range(len(entries)), pa.int32()), "query": entries,
                                          "source": ["test"] * len(entries), "score": [0.0] * len(entries)}))
    return path


def test_match_folder_drops_cross_file_duplicates_and_counts_exactly(tmp_path):
    inputs = make_candidates(tmp_path / "cand", parts=3, rows=80)
    # Part 2 repeats two rows of part 0: they must be dropped there as `duplicate`.
    t0, t2 = folders.read_parquet([inputs[0]]), folders.read_parquet([inputs[2]])
    folders.write_parquet(inputs[2], pa.concat_tables([t2, t0.slice(0, 2)]))
    cand = tmp_path / "candidates"
    cand.mkdir()
    parts = []
    for i, p in enumerate(inputs):
        dst = str(cand / folders.part_name(i))
        folders.write_parquet(dst, folders.read_parquet([p]))
        parts.append(dst)
    entries = ["red", "blue square", "dog", "the tree", "sun"]
    rep = match_folder(_queries(tmp_path, entries), str(cand), str(tmp_path / "matched"),
                       ledger_dir=str(tmp_path / "ledger"), progress=False)
    out = folders.read_parquet([p for p in folders.expand(str(tmp_path / "matched"), (".parquet",))
                                if p.rsplit("/", 1)[-1].startswith("part-")])
    allrows = pa.concat_tables([folders.read_parquet([p]) for p in parts])
    assert out.schema == schemas.MATCHED
    assert len(set(out.column("uid").to_pylist())) == out.num_rows
    assert rep["by_reason"]["duplicate"] == 2
    expected = {}
    seen = set()
    for r in allrows.to_pylist():
        ids = _naive(entries, r["text"])
        if r["uid"] in seen or not ids:
            continue
        seen.add(r["uid"])
        expected[r["uid"]] = ids
    assert dict(zip(out.column("uid").to_pylist(), out.column("query_ids").to_pylist())) == expected
    counts = folders.read_parquet([str(tmp_path / "matched" / "entry_counts.parquet")])
    want = {}
    for ids in expected.values():
        for q in ids:
            want[q] = want.get(q, 0) + 1
    assert dict(zip(counts.column("query_id").to_pylist(), counts.column("count").to_pylist())) == want
    assert counts.schema == schemas.ENTRY_COUNTS
    assert ledger.reconcile(str(tmp_path / "ledger"), {"match": str(tmp_path / "matched")})["match"].ok


def test_entry_counts_do_not_depend_on_sharding(tmp_path):
    rng = random.Random(0)
    rows = [{"uid": candidate_uid(str(i), ""), "query_ids": sorted(rng.sample(range(50), rng.randint(1, 4)))}
            for i in range(3000)]
    t = pa.Table.from_pylist(rows, schema=pa.schema([("uid", pa.string()), ("query_ids", pa.list_(pa.int32()))]))
    for shards in (1, 7):
        d = tmp_path / f"s{shards}"
        d.mkdir()
        step = -(-t.num_rows // shards)
        for i in range(shards):
            folders.write_parquet(str(d / folders.part_name(i)), t.slice(i * step, step))
        got = entry_counts(str(d))
        if shards == 1:
            first = got
        assert got.equals(first)
    assert sum(first.column("count").to_pylist()) == sum(len(r["query_ids"]) for r in rows)


def test_query_list_with_repeated_strings_or_ids_is_refused(tmp_path, capsys):
    from wit.cli import main

    inputs = make_candidates(tmp_path / "cand", parts=1, rows=10)
    bad = tmp_path / "bad.parquet"
    folders.write_parquet(str(bad), pa.table({"query_id": pa.array([0, 1, 2, 2, 4], pa.int32()),
                                              "query": ["red", "dog", "red", "sun", "dog"]}))
    with pytest.raises(ValueError, match=r"bad\.parquet: invalid query list: 2 duplicate query value\(s\): "
                                         r"'red', 'dog'; 1 duplicate query_id value\(s\): 2"):
        match_folder(str(bad), inputs, str(tmp_path / "matched"), progress=False)
    assert not (tmp_path / "matched").exists()
    assert main(["match", "--queries", str(bad), "--candidates", inputs[0], "--out", str(tmp_path / "m")]) == 2
    assert "duplicate query value(s): 'red', 'dog'" in capsys.readouterr().err


def test_candidates_without_a_caption_are_dropped_as_no_match(tmp_path):
    """A user's own candidate Parquet may carry null captions: counted, not a crash."""
    cand = tmp_path / "candidates"
    t = pa.table({"uid": ["a", "b", "c"], "url": ["http://x/1.jpg"] * 3, "text": ["a red dog", None, "nothing"],
                  "page_url": [None] * 3, "source": ["mine"] * 3})
    folders.write_parquet(str(cand / folders.part_name(0)), t)
    rep = match_folder(_queries(tmp_path, ["red"]), str(cand), str(tmp_path / "matched"),
                       ledger_dir=str(tmp_path / "ledger"), progress=False)
    assert rep["kept"] == 1 and rep["by_reason"] == {"no_match": 2}
    assert ledger.reconcile(str(tmp_path / "ledger"), {"match": str(tmp_path / "matched")})["match"].ok
