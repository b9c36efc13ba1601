"""Captions/s per core of wit's matcher against MetaCLIP's published approach, same inputs, same outputs.

Entries: 500,000 strings (all WordNet lemma names, then unigrams and bigrams of the real enwiki
sample dump by frequency, then ``"0".."99"``). Captions: >= 200,000 fragments of the dump's
article text (4-30 words, markup stripped) plus the real alt texts of ../shared/data/crawl.
Baseline: ``spaced`` + pyahocorasick ``iter`` + a set per caption. Both sides produce the
list<int32> column the match stage writes, batch by batch. Asserts identical output. The floor:
one ``bytes.count`` (memchr) pass over the same spaced haystack. All timed in interleaved rounds.
"""

from __future__ import annotations

import argparse
import bz2
import collections
import glob
import random
import re
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data"

from _stats import load_average, rate, ratio, rounds  # noqa: E402

from wit.text.normalize import entry_key, spaced, tokens  # noqa: E402

_MARKUP = [
    (re.compile(r"\{\{[^{}]*\}\}"), " "),
    (re.compile(r"\[\[(?:[^|\]]*\|)?([^\]]*)\]\]"), r"\1"),
    (re.compile(r"<[^>]*>"), " "),
    (re.compile(r"'{2,}|={2,}|\[https?://\S+ ?|\]"), " "),
    (re.compile(r"&[a-z]+;"), " "),
]


def wiki_text() -> str:
    text = bz2.open(DATA / "wikipedia" / "enwiki-pages-articles-206-pages.xml.bz2", "rt").read()
    for pat, rep in _MARKUP:
        text = pat.sub(rep, text)
    return text


def build_entries(text: str, n: int = 500_000) -> list[str]:
    from nltk.corpus import wordnet as wn

    out = dict.fromkeys(sorted(name.replace("_", " ") for name in wn.all_lemma_names()))
    toks = tokens(text)
    uni = collections.Counter(toks)
    bi = collections.Counter(zip(toks, toks[1:]))
    for w, _ in uni.most_common():
        out.setdefault(w, None)
    for i in range(100):
        out.setdefault(str(i), None)
    for (a, b), _ in bi.most_common():
        if len(out) >= n:
            break
        out.setdefault(f"{a} {b}", None)
    entries = [e for e in out if not (len(e) == 1 and not e.isalnum())]
    return entries[:n]


def build_captions(text: str, n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    words = [w for w in re.split(r"[ \t]+", text.replace("\n", " ")) if w]
    alts = []
    from wit.candidates.warc import warc_pairs

    for f in sorted(glob.glob(str(DATA / "crawl" / "*.warc*"))):
        if f.endswith((".wat", ".wet")):
            continue
        alts += [a.strip() for _, a, _ in warc_pairs(f, {}) if a.strip()]
    out = []
    while len(out) < n:
        if alts and rng.random() < 0.1:
            out.append(rng.choice(alts))
            continue
        start = rng.randrange(len(words) - 40)
        out.append(" ".join(words[start:start + rng.randint(4, 30)]))
    return out


def main(argv: list[str] | None = None) -> int:
    import ahocorasick

    from wit.match.matcher import Matcher

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--captions", type=int, default=200_000)
    ap.add_argument("--entries", type=int, default=500_000)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--batch", type=int, default=8192)
    args = ap.parse_args(argv)

    text = wiki_text()
    entries = build_entries(text, args.entries)
    captions = build_captions(text, args.captions)
    print(f"{len(entries):,} entries, {len(captions):,} captions "
          f"({sum(map(len, captions)) / len(captions):.0f} chars avg)")

    # Build costs: automaton construction, and the pickled pyahocorasick automaton reload.
    t0 = time.perf_counter()
    ac = ahocorasick.Automaton()
    for i, e in enumerate(entries):
        ac.add_word(entry_key(e), i)
    ac.make_automaton()
    build_py = time.perf_counter() - t0
    import pickle

    blob = pickle.dumps(ac)
    t0 = time.perf_counter()
    pickle.loads(blob)
    load_py = time.perf_counter() - t0
    matchers = {}
    builds = {}
    for backend in ("tokens", "ahocorasick_rs", "pyahocorasick"):
        t0 = time.perf_counter()
        matchers[backend] = Matcher(entries, backend=backend)
        builds[backend] = time.perf_counter() - t0
    print(f"build: pyahocorasick {build_py:.2f}s (pickle {len(blob) / 1e6:.0f} MB, unpickle {load_py:.2f}s); "
          + ", ".join(f"Matcher[{k}] {v:.2f}s" for k, v in builds.items()))

    # The floor: one memchr pass (bytes.count) over the same spaced haystacks the matcher reads.
    from wit.match.matcher import _SEP, _space_batch

    hays = [_space_batch(_SEP.join(captions[s:s + args.batch]))
            for s in range(0, len(captions), args.batch)]
    fns = {"baseline": lambda: baseline_match(ac, captions, args.batch),
           "floor": lambda: sum(h.count(b" ") for h in hays)}
    fns.update({b: (lambda m=m: _batched(m, captions, args.batch)) for b, m in matchers.items()})
    times, results = rounds(fns, args.repeats)
    ref = results["baseline"]
    import pyarrow.compute as pc

    n = len(captions)
    n_hits = pc.sum(pc.list_value_length(ref)).as_py()
    print(f"{n_hits / n:.1f} entries/caption; {args.repeats} interleaved rounds, medians (min-max); "
          f"{load_average()}")
    print(f"baseline (spaced + pyahocorasick iter + set): {rate(n, times['baseline'], ' captions/s')}")
    for backend in matchers:
        assert results[backend].equals(ref), f"{backend}: output differs from the baseline"
        print(f"wit Matcher.match_batch[{backend}]: {rate(n, times[backend], ' captions/s')} = "
              f"{ratio(times['baseline'], times[backend])} baseline (identical output)")
    print(f"floor (bytes.count over the same {sum(map(len, hays)) / 1e6:.0f} MB spaced haystack): "
          f"{rate(n, times['floor'], ' captions/s')}; tokens takes {ratio(times['tokens'], times['floor'])} "
          "the floor's time")
    best = min(matchers, key=lambda b: statistics.median(times[b]))
    print(f"ratio ({best} / baseline): {ratio(times['baseline'], times[best])}")
    return 0


def baseline_match(ac, captions: list[str], batch: int):
    """Per caption: spaced + iter + set; per batch, the list<int32> column the stage writes."""
    import pyarrow as pa

    chunks = []
    for s in range(0, len(captions), batch):
        out = []
        for c in captions[s:s + batch]:
            found = set()
            for _, i in ac.iter(spaced(c)):
                found.add(i)
            out.append(sorted(found))
        chunks.append(pa.array(out, pa.list_(pa.int32())))
    return pa.chunked_array(chunks)


def _batched(m, captions: list[str], batch: int):
    import pyarrow as pa

    return pa.chunked_array([m.match_batch(captions[s:s + batch]) for s in range(0, len(captions), batch)])


if __name__ == "__main__":
    sys.exit(main())
