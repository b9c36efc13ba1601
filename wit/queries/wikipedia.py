"""Read a Wikipedia pages-articles dump (XML, .bz2 single- or multistream) and clean its wikitext.

A dump is cut into independent *slices* so counting can run in parallel: a multistream dump
into runs of whole bz2 streams (offsets from its ``-multistream-index.txt.bz2`` when present,
else from the stream headers found in the file); a single-stream dump into page strides (slice
k of K takes pages k, k+K, ...), which each decompress the whole file. ``iter_pages(slice)``
yields the pages of one slice; bad input raises ``DumpError`` naming the file and byte position.
"""

from __future__ import annotations

import atexit
import bz2
import html
import io
import logging
import re
import weakref
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Iterator

import fsspec

try:  # libbzip2 in C++ (MIT), ~1.2x libbz2's speed on one core; the stdlib's bz2 is the fallback
    import indexed_bzip2
except ImportError:  # pragma: no cover - a dependency; absent only in a hand-made environment
    indexed_bzip2 = None

log = logging.getLogger(__name__)

CHUNK = 1 << 20
# A bz2 stream header ("BZh" + block size) followed by the first block's magic (pi in BCD).
_STREAM_MAGIC = re.compile(rb"BZh[1-9]1AY&SY")
_HEADER_WINDOW = 1 << 16


class DumpError(ValueError):
    """A dump that cannot be read: the message names the file and the byte position."""


@dataclass(frozen=True)
class DumpSlice:
    """One independent unit of a dump: compressed bytes [start, end) and a page stride."""

    url: str
    start: int = 0
    end: int | None = None  # exclusive; None: to the end of the file
    part: int = 0
    parts: int = 1

    def encode(self) -> str:
        end = "" if self.end is None else str(self.end)
        return f"{self.url}#bytes={self.start}-{end}&pages={self.part}/{self.parts}"

    @classmethod
    def decode(cls, text: str) -> "DumpSlice":
        url, sep, frag = text.rpartition("#")
        if not sep or not frag.startswith("bytes="):
            return cls(text)
        rng, _, pages = frag[len("bytes="):].partition("&pages=")
        start, _, end = rng.partition("-")
        part, _, parts = (pages or "0/1").partition("/")
        return cls(url, int(start), int(end) if end else None, int(part), int(parts))


@dataclass
class Page:
    """One <page>: ``error`` is set (and the rest empty) when its XML did not parse. The wikitext
    is kept as UTF-8 (``text_utf8``), the form the compiled cleaner reads; ``text`` decodes it."""

    uid: str
    title: str = ""
    ns: int = 0
    redirect: bool = False
    text_utf8: bytes = b""
    error: str = ""

    @property
    def text(self) -> str:
        return self.text_utf8.decode("utf-8", "surrogatepass")


# ---------------------------------------------------------------------------------------------
# Planning


def index_url(url: str) -> str | None:
    """The multistream index that belongs to ``url`` (``...-multistream-index.txt.bz2``), if any."""
    if "-multistream" not in url:
        return None
    head, _, tail = url.rpartition("-multistream")
    cand = head + "-multistream-index.txt.bz2" if tail.startswith(".xml") else None
    if cand is None:
        return None
    fs, path = fsspec.core.url_to_fs(cand)
    return cand if fs.exists(path) else None


def stream_offsets(url: str) -> list[int]:
    """Compressed byte offsets where the dump's bz2 streams start (always includes 0)."""
    idx = index_url(url)
    if idx is not None:
        offsets = {0}
        with fsspec.open(idx, "rt", compression="bz2", encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                off, sep, _ = line.partition(":")
                if not sep or not off.isdigit():
                    raise DumpError(f"{idx}: line {n} is not 'offset:page_id:title'")
                offsets.add(int(off))
        return sorted(offsets)
    offsets = []
    overlap = 9
    with fsspec.open(url, "rb") as f:
        pos, tail = 0, b""
        while chunk := f.read(CHUNK * 8):
            buf = tail + chunk
            base = pos - len(tail)
            offsets.extend(base + m.start() for m in _STREAM_MAGIC.finditer(buf))
            tail = buf[-overlap:]
            pos += len(chunk)
    return sorted(set(offsets)) or [0]


def plan_slices(url: str, target_bytes: int = 64 << 20, parts: int = 1) -> list[DumpSlice]:
    """Cut one dump into slices: runs of streams of about ``target_bytes``, else ``parts`` strides."""
    fs, path = fsspec.core.url_to_fs(url)
    size = fs.size(path)
    with fs.open(path, "rb") as f:
        head = f.read(3)
    offsets = stream_offsets(url) if head == b"BZh" else [0]
    if len(offsets) <= 1:
        return [DumpSlice(url, 0, None, k, parts) for k in range(max(1, parts))]
    slices, start = [], 0
    for off in offsets[1:]:
        if off - start >= target_bytes:
            slices.append(DumpSlice(url, start, off))
            start = off
    slices.append(DumpSlice(url, start, None))
    if size and slices[-1].start >= size:
        slices.pop()
    return slices


# ---------------------------------------------------------------------------------------------
# Reading


def _raw_chunks(sl: DumpSlice) -> Iterator[bytes]:
    with fsspec.open(sl.url, "rb") as f:
        f.seek(sl.start)
        left = None if sl.end is None else sl.end - sl.start
        while left is None or left > 0:
            chunk = f.read(CHUNK if left is None else min(CHUNK, left))
            if not chunk:
                break
            if left is not None:
                left -= len(chunk)
            yield chunk


def decompressed_chunks(sl: DumpSlice) -> Iterator[bytes]:
    """The slice's bytes, bz2-decompressed across stream boundaries (raw XML passes through).

    indexed_bzip2 decompresses (one thread) where it is installed. If it fails or stops short
    (bad data, truncation, trailing bytes), the stdlib's decoder (``_libbz2_chunks``) takes over
    at the byte reached, so a sound dump gives the same bytes either way and a damaged one the
    same ``DumpError``.
    """
    produced = 0
    if indexed_bzip2 is not None:
        try:
            for out in _fast_chunks(sl):
                produced += len(out)
                yield out
            return
        except Exception as err:  # noqa: BLE001 - any fault: the reference decoder names it
            if not isinstance(err, _NotFast):
                log.debug("%s: indexed_bzip2 stopped at output byte %d (%s); libbz2 takes over",
                          sl.url, produced, err)
    for out in _libbz2_chunks(sl):
        if produced >= len(out):
            produced -= len(out)
            continue
        yield out[produced:] if produced else out
        produced = 0


class _NotFast(Exception):
    """The slice is not for indexed_bzip2 (not bz2, or it stopped short): use the reference."""


class _ByteRange(io.RawIOBase):
    """Bytes [start, end) of an open file, as a file of their own (what indexed_bzip2 reads)."""

    def __init__(self, f, start: int, end: int) -> None:
        super().__init__()
        self.f, self.start, self.size, self.pos = f, start, end - start, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.pos, io.SEEK_END: self.size}[whence]
        self.pos = max(0, base + offset)
        return self.pos

    def readinto(self, buf) -> int:
        n = min(len(buf), self.size - self.pos)
        if n <= 0:
            return 0
        self.f.seek(self.start + self.pos)
        data = self.f.read(n)
        buf[:len(data)] = data
        self.pos += len(data)
        return len(data)


_OPEN_READERS: "weakref.WeakSet" = weakref.WeakSet()


@atexit.register
def _close_readers() -> None:
    # indexed_bzip2 aborts the process if a reader's thread is still running when Python
    # finalises (an abandoned iter_pages generator): close them first.
    for reader in list(_OPEN_READERS):
        reader.close()


def _fast_chunks(sl: DumpSlice) -> Iterator[bytes]:
    """The slice decompressed by indexed_bzip2; raises ``_NotFast`` where it must not be used or
    stopped short of the slice's end."""
    with fsspec.open(sl.url, "rb") as f:
        f.seek(sl.start)
        if f.read(3) != b"BZh":
            raise _NotFast()
        end = sl.end if sl.end is not None else f.seek(0, io.SEEK_END)
        reader = indexed_bzip2.open(_ByteRange(f, sl.start, end), parallelization=1)
        _OPEN_READERS.add(reader)
        with reader:
            while out := reader.read(CHUNK):
                yield out
            if reader.tell_compressed() != 8 * (end - sl.start):  # in bits
                raise _NotFast()


def _libbz2_chunks(sl: DumpSlice) -> Iterator[bytes]:
    """``decompressed_chunks`` with the stdlib's bz2 (the reference: it names every fault)."""
    chunks = _raw_chunks(sl)
    first = next(chunks, b"")
    if not first:
        if sl.start == 0:
            raise DumpError(f"{sl.url}: empty file")
        return
    if not first.startswith(b"BZh"):
        if sl.start == 0 and first.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<"):
            yield first  # an uncompressed XML dump
            yield from chunks
            return
        raise DumpError(f"{sl.url}: no bz2 stream header at compressed byte {sl.start} (not a .bz2 dump?)")
    dec = bz2.BZ2Decompressor()
    consumed = sl.start  # compressed bytes handed to decompressors so far
    stream_start = sl.start
    pending = first
    while True:
        while pending:
            try:
                out = dec.decompress(pending)
            except OSError as err:
                raise DumpError(f"{sl.url}: bad bz2 data in the stream starting at compressed byte "
                                f"{stream_start}: {err}") from None
            if out:
                yield out
            if dec.eof:
                rest = dec.unused_data
                consumed += len(pending) - len(rest)
                stream_start = consumed
                dec = bz2.BZ2Decompressor()
                pending = rest
                if rest and not rest.startswith(b"BZh"):
                    raise DumpError(f"{sl.url}: {len(rest)} trailing bytes at compressed byte {consumed} "
                                    "are not a bz2 stream")
            else:
                consumed += len(pending)
                pending = b""
        nxt = next(chunks, None)
        if nxt is None:
            break
        pending = nxt
    if consumed > stream_start:  # a stream was begun and never finished
        raise DumpError(f"{sl.url}: truncated bz2 stream: the stream starting at compressed byte "
                        f"{stream_start} ends at byte {consumed} without its end-of-stream marker")


def _text_of(el: ET.Element | None) -> str:
    return "" if el is None or el.text is None else el.text


def parse_page(data: bytes, uid: str) -> Page:
    """Parse one ``<page>...</page>`` fragment (the dump's default namespace is not on it).

    The XML parser reads the page without its wikitext where ``_wikiclean.xml_text`` can take the
    wikitext's bytes as they are (unescaping the five named entities): ~5x less for the parser
    to scan, and no ``str`` of the text at all. Anything else, the parser reads the whole page
    (``parse_page_reference``), so the result is always the parser's.
    """
    region = _text_region(data) if _wikiclean is not None else None
    if region is not None:
        lo, hi = region
        text = _wikiclean.xml_text(data[lo:hi])
        if text is not None:
            try:
                el = ET.fromstring(data[:lo] + data[hi:])
            except ET.ParseError:
                el = None  # the reference parse names the fault as it always has
            revs = el.findall("revision") if el is not None else []
            if len(revs) == 1 and revs[0].find("text") is not None:
                return _page(el, uid, text)
    return parse_page_reference(data, uid)


def parse_page_reference(data: bytes, uid: str) -> Page:
    """``parse_page`` with the XML parser over the whole page."""
    try:
        el = ET.fromstring(data)
    except ET.ParseError as err:
        return Page(uid, error=f"bad_xml: {err}")
    revs = el.findall("revision")
    text = _text_of(revs[-1].find("text")) if revs else ""
    return _page(el, uid, text.encode("utf-8", "surrogatepass"))


def _page(el: ET.Element, uid: str, text_utf8: bytes) -> Page:
    title = _text_of(el.find("title"))
    ns_text = _text_of(el.find("ns")).strip()
    page_id = _text_of(el.find("id")).strip()
    return Page(f"enwiki:{page_id}" if page_id else uid, title, int(ns_text) if ns_text.lstrip("-").isdigit() else 0,
                el.find("redirect") is not None, text_utf8)


def _text_region(data: bytes) -> tuple[int, int] | None:
    """Where the character data of the page's one ``<text ...>`` element lies, or None where the
    page is not of the plain shape (one text tag; no comment, CDATA or DOCTYPE).

    Only the bytes around the wikitext are searched: the wikitext itself holds no ``<`` once
    ``xml_text`` accepts it, so the first ``</text>`` after the tag is the last one in the page."""
    i = data.find(b"<text")
    if i < 0 or data[i + 5:i + 6] not in (b" ", b">", b"\t", b"\n"):
        return None
    gt = data.find(b">", i)
    end = data.rfind(b"</text>")
    if gt < 0 or end <= gt or data[gt - 1:gt] == b"/":  # no end, or an empty element <text ... />
        return None
    head, tail = data[:i], data[end:]
    if b"<!" in head or b"<!" in tail or b"<text" in tail:
        return None
    return gt + 1, end


def iter_pages(sl: DumpSlice) -> Iterator[Page]:
    """Yield the pages of one slice in dump order (only this slice's stride when ``parts > 1``)."""
    buf = b""
    base = 0  # decompressed offset of buf[0] within this slice
    ordinal = 0
    header_checked = sl.start != 0
    closed = False
    open_tag, close_tag = b"<page>", b"</page>"

    def check_header(preamble: bytes) -> None:
        if b"<mediawiki" not in preamble:
            snippet = preamble[:60].decode("utf-8", "replace")
            raise DumpError(f"{sl.url}: not a MediaWiki XML dump: no <mediawiki> root before the first page "
                            f"(starts with {snippet!r})")

    for chunk in decompressed_chunks(sl):
        buf += chunk
        pos = 0
        while True:
            i = buf.find(open_tag, pos)
            if i < 0:
                break
            if not header_checked:
                check_header(buf[:i])
                header_checked = True
            j = buf.find(close_tag, i)
            if j < 0:
                break
            j += len(close_tag)
            if ordinal % sl.parts == sl.part:
                yield parse_page(buf[i:j], f"{sl.url}@{base + i}")
            ordinal += 1
            pos = j
        if not header_checked and len(buf) > _HEADER_WINDOW:
            check_header(buf[:_HEADER_WINDOW])
            header_checked = True
        if not header_checked:
            continue  # keep the preamble until the header is checked
        closed = closed or b"</mediawiki>" in buf[pos:]
        keep = buf.find(open_tag, pos)
        if keep < 0:
            keep = max(pos, len(buf) - len(open_tag))
        base += keep
        buf = buf[keep:]
    if not header_checked:
        check_header(buf)
    start = buf.find(open_tag)
    if start >= 0:
        raise DumpError(f"{sl.url}: truncated XML: the page at decompressed byte {base + start} of the slice "
                        f"starting at compressed byte {sl.start} is never closed")
    if sl.end is None and not (closed or b"</mediawiki>" in buf):
        raise DumpError(f"{sl.url}: truncated XML: the dump ends without </mediawiki>")


# ---------------------------------------------------------------------------------------------
# Wikitext -> plain text
#
# The regular expressions below are the specification (docs/queries.md); every rule is ASCII:
# \s is [ \t\n\r\f\v], \b and case folding look at ASCII letters only, and link text is stripped
# of ASCII white space. ``_wikiclean`` (a C extension built by the set-up) runs the same passes
# on UTF-8 bytes several times faster; without it the pure-Python reference is used.

try:
    from wit.queries import _wikiclean
except ImportError:  # not built (no C compiler at install time)
    _wikiclean = None

_ASCII_WS = " \t\n\r\f\v"

_COMMENT = re.compile(r"<!--.*?(?:-->|\Z)", re.S)
_DROPPED_ELEMENTS = re.compile(
    r"<(ref|math|chem|ce|gallery|timeline|score|syntaxhighlight|source|graph|mapframe|maplink|"
    r"templatedata|imagemap|hiero|inputbox|categorytree|references)\b[^>]*?"
    # Up to the first matching close tag, written as runs of [^<] so the scan is not char by char.
    r"(?:/>|>[^<]*(?:<(?!/\1\s*>)[^<]*)*</\1\s*>)",
    re.S | re.I | re.A,
)
_TAG = re.compile(r"</?[A-Za-z][A-Za-z0-9]*\b[^<>]*>", re.A)
_TEMPLATE = re.compile(r"\{\{[^{}]*\}\}")
# An innermost table: "{|", then runs of [^{|] or a '{' / '|' that does not open or close a
# table, then "|}" (the same as a per-character lookahead for "{|" / "|}", without its cost).
_TABLE = re.compile(r"\{\|[^{|]*(?:(?:\{(?!\|)|\|(?!\}))[^{|]*)*\|\}")
_LINK = re.compile(r"\[\[([^\[\]]*)\]\]")
_EXTERNAL = re.compile(r"\[(?:https?:|ftp:|//)[^\s\]]*\s*([^\]]*)\]", re.A)
# A bare URL (outside [...]): a scheme and "//", a protocol-relative "//host", or "www." at a word
# start, up to white space or one of <>[]{}|" (schemes and "www" in any ASCII case).
_URL_CHARS = r"[^\s<>\[\]{}|\"]"
_BARE_URL = re.compile(rf"(?:https?|ftp)://{_URL_CHARS}*|//{_URL_CHARS}+|\bwww\.{_URL_CHARS}+", re.I | re.A)
_BARE_URL_HINT = re.compile(r"//|www\.", re.I | re.A)
_EMPHASIS = re.compile(r"''+")
# The line rules below run on "\n" + text and start with that "\n" instead of "^": a pattern
# with a literal first character is searched for much faster than one tried at every position.
_HEADING = re.compile(r"\n[ \t]*=+[ \t]*(.*?)[ \t]*=+[ \t]*$", re.M)
_LINE_MARKERS = re.compile(r"\n[ \t]*[*#:;]+")
_MAGIC = re.compile(r"__[A-Z]+__")
_RULE = re.compile(r"\n-{4,}")
_DROPPED_LINK_NS = frozenset({"file", "image", "media", "category"})
_INTERWIKI = re.compile(r"^[a-z]{2,3}(?:-[a-z]+)*$")


def _link_text(inner: str) -> str:
    """The visible text of a wiki link ``[[inner]]``: its label, else its target; "" for files etc."""
    target, sep, label = inner.partition("|")
    target = target.strip(_ASCII_WS)
    if ":" in target and not target.startswith(":"):
        prefix = target.split(":", 1)[0].strip(_ASCII_WS)
        if prefix.lower() in _DROPPED_LINK_NS or (not sep and _INTERWIKI.match(prefix)):
            return ""
    if sep and label.strip(_ASCII_WS):
        return label
    return target.lstrip(":")


def _replace_links(text: str) -> str:
    """Replace innermost links by their text until none is left (file captions hold links).

    ``re.split`` finds the links in C; a plain ``[[target]]`` (no '|' or ':') is resolved inline,
    which is much cheaper than a Python callback per match in ``re.sub``.
    """
    while "[[" in text:
        pieces = _LINK.split(text)
        if len(pieces) == 1:
            break
        pieces[1::2] = [g.strip(_ASCII_WS) if "|" not in g and ":" not in g else _link_text(g) for g in pieces[1::2]]
        text = "".join(pieces)
    return text


def clean_wikitext(text: str) -> str:
    """Plain text of an article (rules in docs/queries.md): markup stripped, links -> visible text."""
    if _wikiclean is None:
        return clean_wikitext_reference(text)
    return html.unescape(_wikiclean.clean(text.encode("utf-8", "surrogatepass")).decode("utf-8", "surrogatepass"))


def clean_wikitext_utf8(text: bytes) -> bytes:
    """``clean_wikitext`` from UTF-8 to UTF-8, without a round trip through ``str`` where the
    cleaned text holds no character reference for ``html.unescape`` to resolve."""
    if _wikiclean is None:
        return clean_wikitext_reference(text.decode("utf-8", "surrogatepass")).encode("utf-8", "surrogatepass")
    out = _wikiclean.clean(text)
    if b"&" not in out:
        return out
    return html.unescape(out.decode("utf-8", "surrogatepass")).encode("utf-8", "surrogatepass")


def clean_wikitext_reference(text: str) -> str:
    """``clean_wikitext`` in pure Python: the regular-expression passes that define the rules."""
    # The "in" guards skip a regex pass where its pattern cannot match (same result, less time).
    if "<!--" in text:
        text = _COMMENT.sub("", text)
    text = _DROPPED_ELEMENTS.sub("", text)
    text = _TAG.sub(" ", text)
    while "{{" in text or "{|" in text:  # templates and tables nest: peel innermost ones until none is left
        text, n1 = _TEMPLATE.subn("", text) if "{{" in text else (text, 0)
        text, n2 = _TABLE.subn("", text) if "{|" in text else (text, 0)
        if not (n1 or n2):
            break
    text = _replace_links(text)
    text = _EXTERNAL.sub(r"\1", text)
    if _BARE_URL_HINT.search(text):
        text = _BARE_URL.sub("", text)
    if "''" in text:
        text = _EMPHASIS.sub("", text)
    text = "\n" + text
    if "=" in text:
        text = _HEADING.sub("\n\\1", text)
    text = _LINE_MARKERS.sub("\n", text)
    if "__" in text:
        text = _MAGIC.sub("", text)
    if "----" in text:
        text = _RULE.sub("\n", text)
    return html.unescape(text[1:])
