"""The compiled <img> scanner against lexbor's tree (wit/candidates/_imgscan.c, warc.html_images).

Wherever the scanner answers (it returns None where tree construction could change the answer),
html_images must equal html_images_lexbor: on the real WARC pages, on hand-written edge cases of
the tokenizer, and on random markup built from the constructs the scanner follows or refuses.
"""

from __future__ import annotations

import random

import pytest

from wit.candidates import warc
from wit.candidates.warc import attribute_value, html_images, html_images_lexbor

pytestmark = pytest.mark.skipif(warc._scan is None, reason="wit.candidates._imgscan is not compiled")

PAGE = "http://a.test/dir/page.html"


def scanned(html: str | bytes):
    data = html if isinstance(html, bytes) else html.encode()
    return warc._scan(data, attribute_value)


def check(html: str | bytes, *, accepted: bool | None = None) -> bool:
    """The scanner's pairs equal lexbor's wherever it answers; returns whether it answered."""
    found = scanned(html)
    if accepted is not None:
        assert (found is not None) == accepted, (html, found)
    if found is not None:
        assert html_images(html, PAGE) == html_images_lexbor(html, PAGE), html
    return found is not None


def test_real_pages_are_all_scanned_and_equal_lexbor(shared_data):
    from wit.candidates.crawl import iter_records
    from wit.candidates.warc import html_markup

    pages = []
    for path in sorted((shared_data / "crawl").glob("*.warc*")):
        if not path.name.endswith((".wat", ".wet")):
            pages += [(html_markup(r.body, r.charset), r.target_uri) for r in iter_records(str(path), "response", {})
                      if "html" in r.content_type]
    assert len(pages) > 40
    n_images = 0
    for markup, uri in pages:
        assert scanned(markup) is not None, uri  # svg, select, <!-- in scripts: all followed
        got = html_images(markup, uri)
        assert got == html_images_lexbor(markup, uri), uri
        n_images += len(got)
    assert n_images > 1000


ACCEPTED = [
    # attributes
    "<img src=a.jpg alt=plain>", "<IMG SRC='A.jpg' ALT=\"Up\">", "<img src=a src=b alt=1 alt=2>",
    "<img alt>", "<img src = 'x y.jpg' alt = \"s p\" >", "<img/src=a/alt=b>", "<img src=a/>", "<img =a src=b>",
    "<img src='a'alt='no space'>", "<img src=\"a\r\nb\" alt='x\ry'>", "<img\rsrc=a\ralt=b>", "<img\fsrc=a>",
    "<img src=a alt='x&amp;y &lt;&gt; &quot;&#39;&#x41;&#65'>", "<img src='?a=1&b=2&amp=3&ampx&copy;&copy=4'>",
    "<img alt='&notit; &notin; &notin &not &noti'>", "<img alt='&#0; &#x110000; &#xD800; &#128; &#x9F; &#13; &#1;'>",
    "<img alt='&#99999999999999; &#; &#x; &#xg &; & ;'>", "<img alt='&AMP; &AMP &Aacute &aacutex &aacute='>",
    "<img data-src=lazy.jpg src='data:image/gif;base64,R0l'>", "<img data-lazy-src=l.jpg data-original=o.jpg>",
    "<img srcset='s1.jpg 1x, s2.jpg 2x' alt=set>", "<img data-srcset='d.jpg 2x'>", "<img src='  ' data-original=o.jpg>",
    "<img src=\"caf\u00e9.jpg\" alt=\"\u6771\u4eac \U0001f600\">",
    # base
    "<base href=/b/><img src=a>", "<img src=a><base href='http://c.test/x/'>", "<base><base href=''><img src=a>",
    "<base target=_top><base href=/second/><base href=/third/><img src=a>",
    # comments, declarations, end tags
    "<!-- <img src=c> --><img src=d>", "<!--><img src=a>", "<!---><img src=a>", "<!----><img src=a>",
    "<!-- x --!><img src=a>", "<!-- x --!> <img src=b> -->", "<!-- a -- b --><img src=c>", "<!--- -- --->",
    "<!doctype html><img src=a>", "<!DOCTYPE html PUBLIC \"x>y\"><img src=a>", "<![CDATA[<img src=x>]]><img src=y>",
    "<?php echo '<img src=p>' ?><img src=q>", "</ img src=x><img src=y>", "</><img src=a>", "</3 <img src=x>>",
    "</div alt='>'><img src=a>", "<img src=a></img><img src=b>", "a < b <img src=c> <5", "<img src=a",
    "<img src=a alt='unterminated", "<!-- unterminated <img src=a>", "<div", "</",
    # raw text, RCDATA, script
    "<style><img src=x></style><img src=y>", "<STYLE>a</Style><img src=b>", "<style></styles><img src=x></style>",
    "<title><img src=x></title ><img src=y>", "<textarea><img src=x></textarea/><img src=y>",
    "<xmp><img src=x></xmp><iframe><img src=y></iframe><noembed><img src=z></noembed><noframes>x</noframes><img src=w>",
    "<noscript><img src=n></noscript>", "<head><noscript><img src=h></noscript></head><body><img src=b>",
    "<script>if (a<b) x='<img src=s>'</script><img src=t>", "<script><!-- x = '<img src=s>'; //--></script><img src=t>",
    "<script><!-- <script> </script> <img src=s> --></script><img src=t>",
    "<script><!-- <script> --> <img src=s></script><img src=t>", "<script><!--<script></script>--></script><img src=u>",
    "<script><!-- </script><img src=a>", "<script><!--->--></script><img src=b>", "<script>", "<style>",
    "<plaintext><img src=x>", "<img src=a><plaintext></plaintext><img src=b>",
    # tables: images in cells and captions keep their order
    "<table><tr><td><img src=a></td><td><img src=b></table><img src=c>", "<table><caption><img src=c></caption></table>",
    "<table><td><img src=a><td><img src=b></table>", "<table><th><table><td><img src=n></table><img src=m></table>",
    "<td><img src=a></td>", "<table><td>x</td></table><img src=after>", "<table><tr><td><select><option>x<td><img src=k></table>",
    # select, svg, math
    "<select><option><img src=a></select><img src=b>", "<select><style><img src=c></style></select><img src=d>",
    "<select><textarea><img src=h></textarea><img src=i>", "<select><div><img src=d></div></select>",
    "<svg><img src=l></svg><img src=m>", "<svg><style><img src=n></style></svg>", "<svg><g><image src=p/></g></svg>",
    "<svg><![CDATA[<img src=q>]]></svg><img src=r>", "<svg><title>Search</title><path d=M0/></svg><img src=a>",
    "<svg viewBox='0 0 1 1'><style>.a{fill:red}</style><script>x</script></svg><img src=a>", "<svg/><img src=a>",
    "<svg><font color=red><img src=u>", "<svg><font><img src=v></font></svg>", "<math><mi>x</mi><img src=w></math>",
    "<svg><svg><g></g></svg><textarea><img src=x></textarea></svg>", "<svg><p><style><img src=y></style><img src=z>",
    "<svg><desc/><foreignObject/></svg><img src=a>", "<math><annotation-xml>text</annotation-xml></math><img src=b>",
]

REFUSED = [
    "<template><img src=t></template>", "<image src=i>", "<frameset><frame src=f></frameset>",
    "<table><img src=a><tr><td><img src=b></table>", "<table><div><img src=a></div></table>",
    "<table><base href=/x/></table><img src=a>", "<img src=\x00a>",
    "<svg><foreignObject><img src=s></foreignObject></svg>", "<svg><desc><style><img src=t></style></desc></svg>",
    "<svg><title><img src=r></title></svg>", "<svg></p><img src=a>", "<div><svg></div><img src=a>",
]


@pytest.mark.parametrize("html", ACCEPTED)
def test_edge_cases_scanned_equal_lexbor(html):
    check(html, accepted=True)


@pytest.mark.parametrize("html", REFUSED)
def test_refused_constructs_go_to_lexbor(html):
    check(html, accepted=False)
    assert html_images(html, PAGE) == html_images_lexbor(html, PAGE)


def test_text_and_bytes_and_charrefs():
    # A str page (a non-UTF-8 body decoded by decode_html) is scanned from its UTF-8 encoding.
    html = "<base href='../up/'><img src='caf\u00e9.jpg?a=1&amp;b=2' alt='\u00e9&eacute;&#233;'>"
    assert html_images(html, PAGE) == html_images(html.encode(), PAGE) == html_images_lexbor(html, PAGE)
    assert html_images(html, PAGE) == [("http://a.test/up/caf\u00e9.jpg?a=1&b=2", "\u00e9\u00e9\u00e9", PAGE)]
    assert attribute_value("a&amp=b&amp;c\r\nd\re") == "a&amp=b&c\nd\ne"
    assert attribute_value("&#x80;&#0;&#x81;") == "\u20ac\ufffd\x81"


FRAGMENTS = [
    "<img src=a.jpg alt=x>", "<img src='b c.jpg' alt=\"q&amp;r\">", "<IMG SRC=C.JPG>", "<img data-src=d.jpg>",
    "<img srcset='e.jpg 2x'>", "<img src=a src=f.jpg alt=1 alt=2 >", "<img/src=g.jpg/>", "<img alt='&notin &amp=x'>",
    "<img src=\"x\ry\">", "<img", " src=h.jpg", " alt='", "'", "\"", ">", "/>", "=", "<base href=/b/>", "<base href=",
    "<table>", "</table>", "<tr>", "</tr>", "<td>", "</td>", "<th>", "<caption>", "</caption>", "<tbody>", "<col>",
    "<div>", "</div>", "<p>", "</p>", "<a href=x>", "</a>", "<b>", "</b>", "<font color=red>", "<font>", "<span>",
    "<select>", "<option>", "</select>", "<svg>", "</svg>", "<svg/>", "<math>", "</math>", "<g>", "</g>",
    "<image href=i.jpg>", "<foreignObject>", "</foreignObject>", "<title>", "</title>", "<desc>", "</desc>",
    "<mi>", "</mi>", "<path/>", "<style>", "</style>", "<script>", "</script>", "<textarea>", "</textarea>",
    "<xmp>", "</xmp>", "<iframe>", "</iframe>", "<noscript>", "</noscript>", "<template>", "</template>",
    "<plaintext>", "<!--", "-->", "--!>", "<!-->", "-", "<!doctype html>", "<![CDATA[", "]]>", "<?x", "</x y='>'>",
    "</", "<", "&", "&amp;", "&lt", "&#", "&#x41;", "\r\n", "\r", " ", "text", "\u00e9", "<br>", "</br>", "<hr/>",
    "<body>", "<head>", "</html>", "<html>", "<frameset>", "<img src=j.jpg alt=\u6771>", "<i>", "</i>", "<nobr>",
    "<button>", "<object>", "<li>", "<form>", "</form>", "<input>", "<mtext>", "<annotation-xml encoding=text/html>",
]


def test_random_markup_scanned_equal_lexbor():
    rng = random.Random(19)
    answered = 0
    n = 3000
    for _ in range(n):
        html = "".join(rng.choice(FRAGMENTS) for _ in range(rng.randint(1, 14)))
        answered += check(html)
    assert answered > n * 0.4, answered  # the refusals stay the exception


def test_random_character_references_equal_lexbor():
    # Named references (each of the table's names, with and without ";", before "=", a letter or a
    # digit), numeric ones of any size, CR and CRLF: decoded in Python by the attribute rules.
    import html.entities

    rng = random.Random(7)
    names = sorted(html.entities.html5)
    tails = ["", "", "x", "=", ";", "1", " ", "&"]
    for _ in range(600):
        parts = []
        for _ in range(rng.randint(1, 5)):
            r = rng.random()
            if r < 0.5:
                parts.append("&" + rng.choice(names) + rng.choice(tails))
            elif r < 0.75:
                parts.append(rng.choice(["&#", "&#x", "&#X"]) + "".join(rng.choice("0123456789abcdefABCDEFg;")
                                                                       for _ in range(rng.randint(0, 10))))
            else:
                parts.append(rng.choice(["a", "b=", "&", "\r", "\r\n", " ", "\u00e9", "?x=1&y=2", "&amp", "&ampx"]))
        value = "".join(parts).replace("'", "")
        check(f"<img src='{value}' alt='{value}'><base href='{value}'>", accepted=True)


def test_refusal_falls_back_to_lexbor_without_the_scanner(monkeypatch):
    html = "<table><img src=a><tr><td><img src=b></table>"  # fostering: a is moved before the table
    assert [p[0] for p in html_images(html, PAGE)] == ["http://a.test/dir/a", "http://a.test/dir/b"]
    monkeypatch.setattr(warc, "_scan", None)
    assert html_images("<img src=x.jpg alt=y>", PAGE) == [("http://a.test/dir/x.jpg", "y", PAGE)]
