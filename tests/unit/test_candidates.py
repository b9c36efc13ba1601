"""Candidates from real crawl samples, checked against independent parses, and bad input counted."""

from __future__ import annotations

import io
import json
import re
from html.parser import HTMLParser
from urllib.parse import urljoin

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from warcio.archiveiterator import ArchiveIterator as WarcioIterator
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from wit.candidates.stage import CandidatesStage
from wit.io import folders, ledger
from wit.records import candidate_uid
from wit.runners import run_stage


def _run(fmt: str, path, **kw):
    st = CandidatesStage(format=fmt, **kw)
    st.begin_task(str(path), 0)
    kept, drops, errors = [], [], {}
    for b in st.read_task(str(path)):
        r = st.process_batch(b)
        kept += r.kept.to_pylist()
        drops += r.dropped.column("reason").to_pylist()
        for k, v in r.errors.items():
            errors[k] = errors.get(k, 0) + v
    return kept, drops, errors


def test_real_wat_yields_its_four_img_links_equal_to_an_independent_parse(shared_data):
    path = shared_data / "crawl" / "cc-main-2014-35-excerpt.warc.wat"
    expected = set()
    with open(path, "rb") as f:
        for rec in WarcioIterator(f):
            if rec.rec_type != "metadata":
                continue
            meta = json.loads(rec.content_stream().read())
            env = meta["Envelope"]
            page = env["WARC-Header-Metadata"].get("WARC-Target-URI", "")
            links = env.get("Payload-Metadata", {}).get("HTTP-Response-Metadata", {}).get("HTML-Metadata", {}).get("Links", [])
            expected |= {(urljoin(page, x["url"]), x["alt"], page) for x in links if x.get("path") == "IMG@/src" and x.get("alt")}
    kept, drops, errors = _run("wat", path)
    assert len(expected) == 4
    assert {(k["url"], k["text"], k["page_url"]) for k in kept} == expected
    assert all(k["uid"] == candidate_uid(k["url"], k["text"]) and k["source"] == "wat" for k in kept)
    assert drops == [] and errors == {}


class _Imgs(HTMLParser):
    def __init__(self):
        super().__init__()
        self.alts: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            alt = dict(attrs).get("alt")
            if alt and alt.strip():
                self.alts.append(alt.strip())


@pytest.mark.parametrize("name", ["cc-main-2020-34-excerpt.warc.gz", "cc-main-2024-22-one-page.warc.gz",
                                  "books-toscrape-with-images.warc", "wget-sample-0000.warc.gz"])
def test_real_warc_alt_texts_equal_an_independent_html_parse(shared_data, name):
    path = shared_data / "crawl" / name
    expected: list[str] = []
    with open(path, "rb") as f:
        for rec in WarcioIterator(f):
            ctype = rec.http_headers.get_header("Content-Type", "") if rec.http_headers else ""
            if rec.rec_type != "response" or "html" not in ctype.lower():
                continue
            body = rec.content_stream().read()
            try:
                html = body.decode("utf-8")
            except UnicodeDecodeError:
                m = re.search(rb"charset=([\w-]+)", ctype.encode() + body[:4096])
                html = body.decode(m.group(1).decode() if m else "utf-8", "replace")
            p = _Imgs()
            p.feed(html)
            expected += p.alts
    kept, drops, _ = _run("warc", path)
    got = [k["text"] for k in kept]
    # Every kept text is an <img alt> of the page; every non-empty alt is kept or dropped for a reason.
    assert set(got) <= set(expected)
    assert len(kept) + sum(r != "empty_text" for r in drops) == len(expected)
    assert len(kept) > 0 and all(k["url"].startswith(("http://", "https://")) for k in kept)


def test_books_page_gives_its_20_covers(shared_data):
    kept, drops, _ = _run("warc", shared_data / "crawl" / "books-toscrape-with-images.warc")
    assert len(kept) == 20 and drops == []
    assert all(k["url"].startswith("http://books.toscrape.com/media/cache/") for k in kept)


def _wat_record(w: WARCWriter, page: str | None, links: list[dict], raw: bytes | None = None) -> None:
    env = {"WARC-Header-Metadata": ({"WARC-Target-URI": page} if page else {}),
           "Payload-Metadata": {"HTTP-Response-Metadata": {"HTML-Metadata": {"Links": links}}}}
    payload = raw if raw is not None else json.dumps({"Envelope": env}).encode()
    headers = {"WARC-Target-URI": page} if page else {}
    rec = w.create_warc_record(page or "", "metadata", payload=io.BytesIO(payload),
                               warc_content_type="application/json", warc_headers_dict=headers)
    w.write_record(rec)


def _wat_file(path, raws: list[bytes]):
    """A gzipped WAT at ``path`` holding one metadata record per raw JSON document (page http://a.test/p)."""
    buf = io.BytesIO()
    w = WARCWriter(buf, gzip=True)
    for raw in raws:
        _wat_record(w, "http://a.test/p", [], raw=raw)
    path.write_bytes(buf.getvalue())
    return path


def _img(url: str, alt: str) -> dict:
    return {"path": "IMG@/src", "url": url, "alt": alt}


def test_bad_wat_input_is_counted_and_the_rest_still_processed(tmp_path):
    buf = io.BytesIO()
    w = WARCWriter(buf, gzip=True)
    _wat_record(w, "http://a.test/p", [_img("x.jpg", "a red dog"), _img("data:image/png;base64,AAA", "inline"),
                                       _img("ftp://a.test/y.jpg", "ftp one"), _img("z.jpg", ""),
                                       _img("x.jpg", "a red dog"), _img("w.jpg", "w" * 2000)])
    _wat_record(w, "http://a.test/q", [], raw=b'{"Envelope": {"IMG@/src" broken')
    _wat_record(w, None, [_img("rel/only.jpg", "no base here")])
    bad = b'{"Envelope":{"WARC-Header-Metadata":{"WARC-Target-URI":"http://a.test/r"},"Payload-Metadata":' \
          b'{"HTTP-Response-Metadata":{"HTML-Metadata":{"Links":[{"path":"IMG@/src","url":"u.jpg","alt":"bad \xff\xfe"},' \
          b'{"path":"IMG@/src","url":"v.jpg","alt":"good cat"}]}}}}}'
    _wat_record(w, "http://a.test/r", [], raw=bad)
    _wat_record(w, "http://a.test/s", [_img("s.jpg", "last before damage")])
    _wat_record(w, "http://a.test/t", [_img("t.jpg", "in the damaged member")])
    data = buf.getvalue()
    path = tmp_path / "broken.warc.wat.gz"
    path.write_bytes(data[: len(data) - 40])  # cut into the last gzip member
    kept, drops, errors = _run("wat", path, max_text_chars=1000)
    assert sorted(k["text"] for k in kept) == ["a red dog", "good cat", "last before damage"]
    assert sorted(drops) == sorted(["data_uri", "bad_scheme", "empty_text", "duplicate", "text_too_long",
                                    "relative_url", "invalid_utf8"])
    assert errors == {"bad_json": 1, "truncated_gz": 1}
    assert {k["url"] for k in kept} >= {"http://a.test/x.jpg", "http://a.test/v.jpg"}


def _warc_response(w: WARCWriter, url: str, html: bytes, ctype: str = "text/html; charset=utf-8") -> None:
    http = StatusAndHeaders("200 OK", [("Content-Type", ctype)], protocol="HTTP/1.1")
    w.write_record(w.create_warc_record(url, "response", payload=io.BytesIO(html), http_headers=http))


def test_warc_img_variants_and_invalid_utf8(tmp_path):
    buf = io.BytesIO()
    w = WARCWriter(buf, gzip=True)
    _warc_response(w, "http://b.test/dir/page.html",
                   b'<html><head><base href="http://cdn.test/base/"></head><body>'
                   b'<img src="a.jpg" alt="Hot dog on a plate">'
                   b'<img src="data:image/gif;base64,R0l" data-src="/lazy.jpg" alt="Lazy cat">'
                   b'<img srcset="small.jpg 1x, big.jpg 2x" alt="A set">'
                   b'<img src="n.jpg"></body></html>')
    _warc_response(w, "http://b.test/latin", "<img src='l.jpg' alt='Caf\u00e9 cr\u00e8me'>".encode("latin-1"),
                   ctype="text/html; charset=iso-8859-1")
    _warc_response(w, "http://b.test/broken", b"<img src='x.jpg' alt='bad \xff\xfe bytes'><img src='y.jpg' alt='fine'>",
                   ctype="text/html")
    _warc_response(w, "http://b.test/img.png", b"\x89PNG not html", ctype="image/png")
    path = tmp_path / "t.warc.gz"
    path.write_bytes(buf.getvalue())
    kept, drops, errors = _run("warc", path)
    got = {(k["url"], k["text"]) for k in kept}
    assert got == {("http://cdn.test/base/a.jpg", "Hot dog on a plate"), ("http://cdn.test/lazy.jpg", "Lazy cat"),
                   ("http://cdn.test/base/small.jpg", "A set"), ("http://b.test/l.jpg", "Caf\u00e9 cr\u00e8me"),
                   ("http://b.test/y.jpg", "fine")}
    assert sorted(drops) == ["empty_text", "invalid_utf8"] and errors == {}


def test_images_without_a_url_are_dropped_not_resolved_to_the_page(tmp_path):
    buf = io.BytesIO()
    w = WARCWriter(buf, gzip=True)
    _warc_response(w, "http://b.test/page.html", b'<img alt="No source at all"><img src="  " alt="Blank source">'
                                                 b'<img src="ok.jpg" alt="A real one">')
    path = tmp_path / "nosrc.warc.gz"
    path.write_bytes(buf.getvalue())
    kept, drops, errors = _run("warc", path)
    assert [(k["url"], k["text"]) for k in kept] == [("http://b.test/ok.jpg", "A real one")]
    assert drops == ["empty_url", "empty_url"] and errors == {}


def test_wat_fields_of_the_wrong_type_are_read_as_missing(tmp_path):
    # every document below once stopped the whole file (AttributeError) or kept a list as alt text
    def doc(links: str, head: str = "", header: str = '{"WARC-Target-URI":"http://a.test/p"}') -> bytes:
        return ('{"Envelope":{"WARC-Header-Metadata":' + header + ',"Payload-Metadata":{"HTTP-Response-Metadata":'
                '{"HTML-Metadata":{' + head + '"Links":' + links + '}}}}}').encode()

    img = '{"path":"IMG@/src","url":"a.jpg","alt":"kept"}'
    raws = [doc('[{"path":"IMG@/src","url":5,"alt":"number url"}]'),
            doc('["IMG@/src",{"path":"IMG@/src","url":"b.jpg","alt":["list","alt"]},' + img + ']'),
            doc('[' + img + ']', head='"Head":"not an object",'),
            doc('[' + img + ']', header='"IMG@/src"'),
            doc('{"path":"IMG@/src","url":"c.jpg","alt":"links as an object"}'),
            doc('[' + img + ']', head='"Head":{"Base":7},'),
            doc('[{"path":"IMG@/src","url":"","alt":"empty url"}]')]
    kept, drops, errors = _run("wat", _wat_file(tmp_path / "types.warc.wat.gz", raws))
    # the record header's WARC-Target-URI stands in where the JSON's is not a string
    assert sorted((k["url"], k["text"]) for k in kept) == [("http://a.test/a.jpg", "kept")]
    assert sorted(drops) == sorted(["empty_url", "empty_text", "duplicate", "duplicate", "duplicate",
                                    "empty_url"])
    assert errors == {}


def test_url_lists_parquet_and_csv_with_configured_columns(tmp_path):
    t = pa.table({"URL": ["http://c.test/1.jpg", "relative.jpg", "http://c.test/1.jpg", None],
                  "caption": ["one", "two", "one", "four"]})
    pq.write_table(t, tmp_path / "l.parquet")
    (tmp_path / "l.csv").write_text("URL,caption\nhttp://c.test/1.jpg,one\nrelative.jpg,two\nhttp://c.test/1.jpg,one\n,four\n")
    for fmt in ("parquet", "csv"):
        kept, drops, _ = _run(fmt, tmp_path / f"l.{fmt}", url_col="URL", text_col="caption")
        assert [(k["url"], k["text"], k["source"]) for k in kept] == [("http://c.test/1.jpg", "one", fmt)]
        assert sorted(drops) == ["duplicate", "empty_url", "relative_url"]  # the empty URL has none


def test_stage_under_runner_reconciles_and_counts_errors_in_markers(tmp_path, shared_data):
    inputs = [str(shared_data / "crawl" / n) for n in ("cc-main-2014-35-excerpt.warc.wat",)]
    buf = io.BytesIO()
    w = WARCWriter(buf, gzip=True)
    _wat_record(w, "http://a.test/q", [], raw=b'{"IMG@/src" oops')
    (tmp_path / "bad.wat.gz").write_bytes(buf.getvalue())
    inputs.append(str(tmp_path / "bad.wat.gz"))
    rep = run_stage(CandidatesStage(format="wat"), inputs, str(tmp_path / "out"), ledger_dir=str(tmp_path / "ledger"),
                    progress=False)
    assert rep.kept == 4 and rep.errors == {"bad_json": 1}
    assert ledger.reconcile(str(tmp_path / "ledger"), {"candidates": str(tmp_path / "out")})["candidates"].ok
    assert folders.read_parquet(str(tmp_path / "out")).num_rows == 4


def test_wat_json_edge_cases_parse_as_the_standard_parser_does(tmp_path):
    # orjson reads well-formed UTF-8 JSON; what it refuses (lone surrogate escapes, NaN, integers
    # past 64 bits; invalid UTF-8 is the test above) goes to the standard parser: the same pairs.
    from wit.candidates.wat import wat_pairs

    def doc(alt: str, extra: str = "") -> bytes:
        return ('{"Envelope":{"WARC-Header-Metadata":{"WARC-Target-URI":"http://a.test/p"},' + extra +
                '"Payload-Metadata":{"HTTP-Response-Metadata":{"HTML-Metadata":{"Links":'
                '[{"path":"IMG@/src","url":"x.jpg","alt":' + alt + '}]}}}}}').encode("utf-8", "surrogatepass")

    raws = [doc('"caf\\u00e9 \\ud83d\\ude00"'), doc('"lone \\ud800 surrogate"'), doc('"nan"', '"n":NaN,'),
            doc('"big"', '"n":123456789012345678901234567890,'),
            doc('"東京 \\"quoted\\""'), doc('"x"', '"deep":' + "[" * 50 + "]" * 50 + ",")]
    path = _wat_file(tmp_path / "edge.warc.wat.gz", raws)
    errors: dict[str, int] = {}
    got = list(wat_pairs(str(path), errors))
    want = [("http://a.test/x.jpg", json.loads(r.decode("utf-8", "replace"))["Envelope"]["Payload-Metadata"]
             ["HTTP-Response-Metadata"]["HTML-Metadata"]["Links"][0]["alt"], "http://a.test/p") for r in raws]
    assert got == want and errors == {}


def test_resolve_equals_urljoin_on_random_references():
    # resolve joins plain references by concatenation; it must give what urljoin gives, always (but for
    # an empty reference, which stays empty).
    import random
    from urllib.parse import urljoin

    from wit.candidates.wat import resolve

    def reference(base: str, src: str) -> str:
        src = src.strip()
        if not src:  # an image without a URL stays without one (urljoin would give the base)
            return ""
        if not base or src.startswith(("http://", "https://", "data:")):
            return src
        try:
            return urljoin(base, src)
        except ValueError:
            return src

    bases = ["http://a.test", "http://a.test/", "https://a.test/x/y.html", "http://a.test/x/y/", "HTTP://A.test:81/p/q",
             "http://u:p@a.test/p/q?x=1#f", "http://a.test/x//y/z", "http://a.test/x/./y", "http://a.test/x/../y",
             "http://a.test/x/..", "http://a.test/x/.", "http://a.test/x;p=1/y", "http://a.test/x/y;p", "ftp://a.test/x/",
             "http://a.test/é/ü.html", "//a.test/x/", "/rel/base", "http://[::1]/x/", "http://a.test/x/y?",
             " http://a.test/pad/ ", "http://a.test/a%2Fb/c", "https://a.test/~user/", "", "http://a.test/x/y:z/w"]
    alphabet = ["a", "b", "img", ".jpg", "/", "/", ".", "..", "?", "#", ";", ":", "%20", "é", " ", "\t", "-", "_", "~",
                "=", "&", "@", "+", "!", "'", "(", "*", ",", "$", "\\", "//", "x.png", "...", "./", "\x01", "\u00a0",
                "\r", "\n", "[", "]", '"', "<", "{", "|", "^", "`", "\x7f"]
    rng = random.Random(4)
    srcs = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 7))) for _ in range(6000)]
    srcs += ["/", ".", "..", "./a", "../a", "a/./b", "a/../b", "/a//b", "a//b", "//b/c", "a/", "/a/", "...", "a/...",
             "./", "././a", ".//a", "./../a", "./ a b.jpg", "./.", "./..", "./a/./b", "//h/x", "//h", "///x", "//[::1]/x",
             "//h]/x", "//é.test/x", "//h//x", "//h/./x", "//h/../x", "//H.test/x y", "//h/x?q", "//u@h/x"]
    for base in bases:
        for src in srcs:
            assert resolve(base, src) == reference(base, src), (base, src)


def test_html_parsed_from_utf8_bytes_equals_parsed_from_text(shared_data):
    # html_markup hands UTF-8 bodies to the parser as bytes; the pairs must equal those of the decoded text.
    from wit.candidates.crawl import iter_records
    from wit.candidates.warc import decode_html, html_images, html_markup

    bodies = [("<html><head><base href='/b/'></head><body><img src='a.jpg' alt='caf\u00e9 \u6771\u4eac'>"
               "<img data-src='x.png' alt=\"&amp; &eacute;\"></body></html>").encode(), "\ufeff<img src=é.jpg alt=bom>".encode(),
              "<img src=a.jpg alt='caf\xe9'>".encode("latin-1"), b"<img src=a.jpg alt='plain'>"]
    pages = [(b, None, "http://a.test/p/q") for b in bodies]
    for path in sorted((shared_data / "crawl").glob("*.warc*")):
        if not path.name.endswith((".wat", ".wet")):
            pages += [(r.body, r.charset, r.target_uri) for r in iter_records(str(path), "response", {})
                      if "html" in r.content_type]
    kinds = set()
    for body, charset, uri in pages:
        markup = html_markup(body, charset)
        kinds.add(type(markup))
        assert html_images(markup, uri) == html_images(decode_html(body, charset), uri)
    assert kinds == {bytes, str} and len(pages) > 40


def test_simd_reading_declines_or_equals_the_full_parse():
    # The fast reading of a WAT document gives page_images' answer or None (the full parse decides).
    import random

    import simdjson

    from wit.candidates.wat import _simd_page_images, page_images

    parts = ['{"path":"IMG@/src","url":"a.jpg","alt":"x"}', '{"path":"A@/href","url":"b"}', '{"url":"no path"}',
             '"IMG@/src"', '7', '{"path":"IMG@\\/src","url":"escaped.jpg"}', '{"path":"IMG@/src","url":3}',
             '{"path":"IMG@/src"}', '{"path":null}', '[]', '{"path":"IMG@/src","alt":"only alt"}']
    levels = ['{"WARC-Target-URI":"http://a.test/p"}', '{"WARC-Target-URI":5}', '[]', '"s"', '{}']
    heads = ['', '"Head":{"Base":"/b/"},', '"Head":{"Base":7},', '"Head":[],', '"Head":{},', '"Head":null,']
    rng = random.Random(3)
    parser = simdjson.Parser()
    declined = 0
    for _ in range(400):
        links = "[" + ",".join(rng.choice(parts) for _ in range(rng.randint(0, 5))) + "]"
        if rng.random() < 0.1:
            links = rng.choice(['{}', '"x"', 'null'])
        body = ('{"Envelope":{"WARC-Header-Metadata":' + rng.choice(levels) + ',"Payload-Metadata":'
                '{"HTTP-Response-Metadata":{"HTML-Metadata":{' + rng.choice(heads) + '"Links":' + links + '}}}}}')
        if rng.random() < 0.1:
            body = body.replace('"Payload-Metadata"', '"Other"')
        found = _simd_page_images(parser, body.encode())
        if found is None:
            declined += 1
        else:
            assert found == page_images(json.loads(body)), body
    assert 50 < declined < 350


def test_contains_equals_bytes_in():
    import random

    from wit.candidates import crawl

    rng = random.Random(1)
    needle = b'"IMG@/src"'
    for _ in range(2000):
        hay = bytes(rng.choice(b'"IMG@/src x\x00') for _ in range(rng.randint(0, 40)))
        if rng.random() < 0.3:
            k = rng.randint(0, len(hay))
            hay = hay[:k] + needle + hay[k:]
        assert crawl._contains(hay, needle) == (needle in hay)
    assert crawl._contains(b"", b"") is True and crawl._contains(b"", needle) is False
