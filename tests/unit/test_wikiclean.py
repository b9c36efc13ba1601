"""The compiled wikitext cleaner equals the pure-Python reference (the regular expressions).

wit/queries/_wikiclean.c re-implements each regex pass of ``clean_wikitext_reference`` as a
byte scanner; these tests compare the two on real dump pages and on random markup built from
the constructs where regex semantics are subtle (nesting, backtracking, lazy groups, case
folding, white space of every kind).
"""

from __future__ import annotations

import os
import random

import pytest

from wit.queries import wikipedia

# Pieces of markup, including near misses (a '_' after a tag name, a non-ASCII letter after a
# dropped element's name, the long-s that Unicode case folding would turn into 's').
PIECES = [
    "{{", "}}", "{|", "|}", "{", "}", "|", "[[", "]]", "[", "]", "<ref>", "</ref>", "<REF name=x/>",
    "</Ref >", "<!--", "-->", "<br/>", "<b_", "<div>", "</div>", "<a1>", "=", "==", "===", " ", "\t",
    "\n", "\r", "'", "''", "'''", "__TOC__", "__A_", "_", "----", "-", "*", "#", ":", ";", "http://",
    "https:", "ftp:", "//", "File:", "file :", "fr:", "zh-min-nan:", "abcd:", "Category:", "a", "b",
    "é", "\u00a0", "\u2003", "&amp;", "&nbsp;", ">", "<", "/", "/>", "<math>", "</math\n>",
    "<references/>", "<references>", "<ce>", "<chem>", "</ce\t>", "<refé>", "<ſcore>", "x", "1",
    "\x0b", "\x1c", "\u0085", "www.", "WwW.", "HTTPS://", "ftp://", ".", "x.org/a?b=1", '"', "{", "_www.",
]
# Small alphabets that make one construct dense: nesting, headings, link text, dropped
# elements, magic words and rules, line markers and emphasis, external links.
ALPHABETS = [
    list("{}|[]a "), list("= \ta\n"), list("[]|: a\tfF"),
    ["<ref", ">", "</ref", " ", "/", "<", "\n", "a", "/>", "REF", "_"],
    list("_AZa\n-"), list("'a\n*#:; -"), ["[", "]", "http:", "//", " ", "a", "\n", "]]", "[["],
    # Bare URLs: schemes in any case, "//", "www." at and off a word start, and what ends them.
    ["http", "s", "S", ":", "/", "//", "ftp:", "www", "W", ".", "w", " ", "é", "]", "<", "|", '"', "_", "x"],
]


@pytest.fixture(scope="module")
def native():
    if wikipedia._wikiclean is None:
        if os.environ.get("CI"):
            pytest.fail("wit.queries._wikiclean was not built: the set-up (pip install -e .) compiles it")
        pytest.skip("the compiled cleaner is not built on this machine")
    return wikipedia._wikiclean


def _assert_same(texts):
    for text in texts:
        want = wikipedia.clean_wikitext_reference(text)
        assert wikipedia.clean_wikitext(text) == want, repr(text)
        # The counting stage's form: UTF-8 straight from the cleaner where no reference is left.
        utf8 = text.encode("utf-8", "surrogatepass")
        assert wikipedia.clean_wikitext_utf8(utf8) == want.encode("utf-8", "surrogatepass"), repr(text)


def test_real_dump_pages_clean_identically(native, shared_data):
    data = shared_data / "wikipedia"
    dumps = sorted(data.glob("*.xml.bz2"))
    assert dumps, f"no sample dumps in {data}"
    pages = [p for d in dumps for p in wikipedia.iter_pages(wikipedia.plan_slices(str(d))[0])]
    assert len(pages) > 200
    _assert_same(p.text for p in pages)


def test_random_markup_cleans_identically(native):
    rng = random.Random(20261123)
    _assert_same("".join(rng.choice(PIECES) for _ in range(rng.randint(0, 40))) for _ in range(20_000))
    for alphabet in ALPHABETS:
        _assert_same("".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30))) for _ in range(4_000))


def test_link_text_and_whitespace_of_every_kind(native):
    """Link targets and labels are stripped of ASCII white space only, the same in both."""
    spaces = [chr(c) for c in range(0x110000) if chr(c).isspace()]
    texts = [f"[[{s}Paris{s}]] [[{s}:fr{s}:x]] [[ a |{s}]] [[{s}File{s}:x.jpg|cap]] "
             f"[http://x{s}label] <ref{s}>r</ref{s}> <b{s}x>" for s in spaces]
    _assert_same(texts)
    # Non-ASCII text and a lone surrogate pass through unchanged.
    _assert_same(["日本語 [[東京|とうきょう]] ''é'' == ü ==", "a\ud800b [[x]]"])


def test_known_outputs(native):
    cases = {
        "{{a {{b}} c}}x{|\n|t\n|}y": "xy",
        "[[File:a.jpg|thumb|A [[b|B]] c]]d": "d",
        "[[fr:Paris]] [[:fr:Paris]] [[a|]] [[a| ]] [[a|b]]": " fr:Paris a a b",
        "\n== H ==\n=x=\n= =\n===": "\nH\nx\n\n",
        "<ref name=a/>x<REF>y</ref >z<ref>unclosed": "xz unclosed",  # an unclosed one is a tag
        "<references/>a<b_>c<br/>d": "a<b_>c d",
        "__TOC__a__B_c ''i'' '''b''' ---- \n----x": "a__B_c i b ---- \nx",
        "[https://e.org label] [//e.org] [x y]": "label  [x y]",
        "a &amp; b&nbsp;c": "a & b\u00a0c",
        "see https://web.archive.org/web/2015/http://x.com/p?q=1, then": "see  then",
        "a //host/p b HTTP://X c www.x.org d xwww.y e ftp://f]g": "a  b  c  d xwww.y e ]g",
        "http:// [http://a.b label] <b>www.c</b> www. a//": " label    www. a//",
    }
    for text, want in cases.items():
        assert wikipedia.clean_wikitext_reference(text) == want, text
        assert wikipedia.clean_wikitext(text) == want, text


def test_without_the_extension_the_reference_is_used(monkeypatch):
    monkeypatch.setattr(wikipedia, "_wikiclean", None)
    text = "== H ==\n[[a|b]] {{t}} <ref>r</ref>c"
    assert wikipedia.clean_wikitext(text) == wikipedia.clean_wikitext_reference(text) == "H\nb  c"


PATHOLOGICAL = {
    "unclosed elements": "<ref>x <math>y ",
    "open tags without '>'": "<ref a <gallery b ",
    "external links without ']'": "[http://a b ",
    "close tags of other elements": "<ref>a</math><REF name=x>",
    "open tags sharing one distant '>'": "<ref <math x ",
    "external links without blanks or ']'": "[//[http://",
}


@pytest.mark.timeout(20)
@pytest.mark.parametrize("unit", list(PATHOLOGICAL.values()), ids=list(PATHOLOGICAL))
def test_unclosed_markup_stays_linear(native, unit):
    """Many unclosed elements: each failed forward search is remembered, so a page is not
    rescanned once per element. The regular expressions are quadratic here, so they are only
    compared on short pieces; on the full piece the scanners took 5-65 s without the memo
    (external links with blanks excepted: 0.2 s) and take milliseconds with it."""
    _assert_same([unit * 60, unit * 60 + ">", unit * 60 + " ]"])  # the reference is cubic on some
    big = unit * 60_000
    assert len(wikipedia.clean_wikitext(big + ">")) > 0
    assert len(wikipedia.clean_wikitext(big)) > 0


def test_counting_without_the_extension_warns_once(monkeypatch, caplog, tmp_path):
    from wit.queries import counts

    monkeypatch.setattr(wikipedia, "_wikiclean", None)
    counts._warn_slow_cleaner.cache_clear()
    stage = counts.CountStage(spill_dir=str(tmp_path))
    with caplog.at_level("WARNING", logger="wit.queries.counts"):
        stage.begin_task("", 0)
        stage.begin_task("", 1)
    assert [r.message for r in caplog.records].count(caplog.records[0].message) == 1
    assert "pure-Python wikitext cleaner" in caplog.records[0].message


def test_no_entry_of_the_real_dump_holds_a_url_fragment(native, monkeypatch, shared_data):
    from wit.text.normalize import collapse_whitespace, spaced

    dumps = sorted((shared_data / "wikipedia").glob("*.xml.bz2"))
    assert dumps, f"no sample dumps in {shared_data / 'wikipedia'}"
    pages = [p.text for d in dumps for p in wikipedia.iter_pages(wikipedia.plan_slices(str(d))[0])]

    def fragments(clean) -> set[str]:
        words = spaced(collapse_whitespace(" ".join(clean(t) for t in pages))).split()
        return {w for w in words if "http" in w.lower() or "www." in w.lower() or "//" in w}

    assert fragments(wikipedia.clean_wikitext) == set() == fragments(wikipedia.clean_wikitext_reference)
    monkeypatch.setattr(wikipedia, "_BARE_URL_HINT", wikipedia.re.compile("(?!)"))
    assert len(fragments(wikipedia.clean_wikitext_reference)) >= 5  # without the URL rule they are there
