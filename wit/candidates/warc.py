"""(image URL, alt) pairs from the ``<img>`` tags of HTML responses in WARC files."""

from __future__ import annotations

import codecs
import html.entities
import re
from typing import Iterator

from selectolax.lexbor import LexborHTMLParser

from wit.candidates.crawl import iter_records
from wit.candidates.wat import _base_url, resolve

try:  # the compiled <img> scanner (setup.py builds it; without it every page goes to lexbor)
    from wit.candidates._imgscan import scan as _scan
except ImportError:  # pragma: no cover - a machine without a C compiler
    _scan = None

_IMG = re.compile(rb"<img", re.I)
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?([A-Za-z0-9_\-:.]+)""", re.I)


def decode_html(body: bytes, charset: str | None) -> str:
    """Decode an HTML body: UTF-8, else the declared charset, else UTF-8 with U+FFFD for bad bytes."""
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        pass
    declared = charset
    if not declared:
        m = _META_CHARSET.search(body, 0, 4096)
        declared = m.group(1).decode("ascii") if m else None
    if declared:
        try:
            codecs.lookup(declared)
            return body.decode(declared)
        except (LookupError, UnicodeDecodeError):
            pass
    return body.decode("utf-8", "replace")


def html_markup(body: bytes, charset: str | None) -> str | bytes:
    """What the HTML parser reads: ``body`` itself when it is UTF-8 (the parser takes UTF-8 bytes, so a
    str it would encode back is not made), else ``decode_html``'s text."""
    if body.isascii():
        return body
    try:
        body.decode("utf-8")
    except UnicodeDecodeError:
        return decode_html(body, charset)
    return body


def image_source(attrs) -> str:
    """The image URL of an ``<img>``: src, or its lazy-loading stand-in when src is empty or data:
    (``attrs``: a mapping with ``get``, a dict or a lexbor node's ``attrs``)."""
    return _source(attrs.get("src"), attrs.get("data-src"), attrs.get("data-lazy-src"),
                   attrs.get("data-original"), attrs.get("srcset") or attrs.get("data-srcset"))


def _source(src, *lazy_and_srcset) -> str:
    """``image_source`` on the values themselves (None for an absent attribute): src, data-src,
    data-lazy-src, data-original, then srcset (or data-srcset)."""
    src = (src or "").strip()
    if src and not src.startswith("data:"):
        return src
    *lazy, srcset = lazy_and_srcset
    for alt_src in lazy:
        alt_src = (alt_src or "").strip()
        if alt_src and not alt_src.startswith("data:"):
            return alt_src
    srcset = (srcset or "").strip()
    if srcset:
        first = srcset.split(",")[0].strip().split(" ")[0]
        if first:
            return first
    return src


# Character references in an attribute value, by the HTML tokenizer's rules (html.unescape's differ:
# it decodes "&amp=" in an attribute and drops control characters that HTML keeps).
_CHARREF = re.compile(r"&(#[xX][0-9A-Fa-f]+;?|#[0-9]+;?|[A-Za-z0-9]+;?)")
_ENTITIES = html.entities.html5
_C1 = {}  # the numeric references 0x80-0x9F that HTML reads as windows-1252
for _n in range(0x80, 0xA0):
    try:
        _C1[_n] = bytes([_n]).decode("cp1252")
    except UnicodeDecodeError:
        pass


def _charref(m: re.Match) -> str:
    ref = m.group(1)
    if ref[0] == "#":
        hexa = ref[1] in "xX"
        digits = ref[2 if hexa else 1:].rstrip(";").lstrip("0") or "0"
        num = int(digits, 16 if hexa else 10) if len(digits) <= 8 else 0x110000
        if num == 0 or num > 0x10FFFF or 0xD800 <= num <= 0xDFFF:
            return "\ufffd"
        return _C1.get(num) or chr(num)
    for k in range(min(len(ref), 32), 0, -1):  # the longest name in the table that ref starts with
        name = ref[:k]
        if name in _ENTITIES:
            if name[-1] != ";":  # a legacy name without ";" before "=" or a letter or digit stays text
                after = ref[k:k + 1] or m.string[m.end():m.end() + 1]
                if after == "=" or (after.isascii() and after.isalnum()):
                    return m.group(0)
            return _ENTITIES[name] + ref[k:]
    return m.group(0)


def attribute_value(raw: str) -> str:
    """An attribute's raw text as the HTML tokenizer gives it: CR and CRLF read as LF (the input
    stream's preprocessing), then character references decoded with the rules for attributes."""
    if "\r" in raw:
        raw = raw.replace("\r\n", "\n").replace("\r", "\n")
    return _CHARREF.sub(_charref, raw) if "&" in raw else raw


def html_images(html: str | bytes, page_url: str) -> list[tuple[str, str, str]]:
    """(url, alt, page_url) for every ``<img>`` in ``html`` (text, or UTF-8 bytes; alt "" when absent).

    The compiled scanner reads the tags where the tokens alone decide the answer (most pages); the
    rest are parsed by lexbor. Both give what lexbor's tree gives (tests/unit/test_imgscan.py).
    """
    found = None
    if _scan is not None:
        data = html if isinstance(html, bytes) else html.encode("utf-8", "surrogatepass")
        found = _scan(data, attribute_value)
    if found is None:
        return html_images_lexbor(html, page_url)
    base_href, images = found
    base = _base_url(page_url, base_href.strip()) if base_href else page_url
    return [(resolve(base, _source(src, d_src, d_lazy, d_orig, srcset or d_srcset)), alt or "", page_url)
            for src, d_src, d_lazy, d_orig, srcset, d_srcset, alt in images]


def html_images_lexbor(html: str | bytes, page_url: str) -> list[tuple[str, str, str]]:
    """``html_images`` from lexbor's tree: css("img") and the first base[href]."""
    tree = LexborHTMLParser(html)
    base_node = tree.css_first("base[href]")
    base = _base_url(page_url, (base_node.attributes.get("href") or "").strip()) if base_node else page_url
    out = []
    for node in tree.css("img"):
        attrs = node.attrs  # looked up per name in lexbor: ~12x cheaper than ``attributes``'s full dict
        out.append((resolve(base, image_source(attrs)), attrs.get("alt") or "", page_url))
    return out


def warc_pairs(path: str, errors: dict[str, int]) -> Iterator[tuple[str, str, str]]:
    """(url, alt, page_url) for the ``<img>`` tags of every HTML response in the WARC at ``path``."""
    for rec in iter_records(path, "response", errors):
        if "html" not in rec.content_type or not _IMG.search(rec.body):
            continue
        try:
            pairs = html_images(html_markup(rec.body, rec.charset), rec.target_uri)
        except Exception:  # noqa: BLE001 - one unparsable page must not stop the file
            errors["bad_html"] = errors.get("bad_html", 0) + 1
            continue
        yield from pairs
