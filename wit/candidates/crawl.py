"""Reading WARC/WAT records with FastWARC, counting damage instead of stopping at it.

FastWARC raises at a corrupt gzip member or a garbled WARC header, stops quietly at a truncated
member, and may hand back a damaged record with a short body. So every stretch FastWARC reads is
checked here against the file: after the last good record, the reader looks for where that
record ends (the end of its gzip member, or its header's Content-Length); bytes left there are
damage, counted once per damaged stretch (``truncated_gz``: a .gz that ends inside a member;
``truncated_record``: an uncompressed file that ends inside a record; ``corrupt_record``:
undecodable or garbled bytes mid-file), and reading resumes at the next record start (a gzip
member that decompresses to a WARC header, or a ``WARC/1.x`` line); a record of unknown type
(a garbled header) is ``corrupt_record`` too. Records before and after
the damage are kept.
"""

from __future__ import annotations

import operator
import re
import zlib
from typing import Iterator

import fsspec
from fastwarc.warc import ArchiveIterator, WarcRecordType

try:  # memmem: ~3x faster than bytes' own search for the WAT needle (~5 % of a WAT record's time)
    from wit.candidates._imgscan import contains as _contains
except ImportError:  # pragma: no cover - a machine without a C compiler
    _contains = operator.contains

_GZ_MAGIC = b"\x1f\x8b\x08"
_WARC_START = re.compile(rb"WARC/1\.[01]\r?\n")
_CONTENT_LENGTH = re.compile(rb"\ncontent-length:[ \t]*([0-9]+)", re.I)
_SCAN = 1 << 20


class RawRecord:
    """One wanted record: its body, HTTP content type and charset (responses), offset, and target URI
    (read from the WARC header on first use: the lookup costs ~2.5 us, a WAT record rarely needs it)."""

    __slots__ = ("_headers", "_uri", "body", "content_type", "charset", "position")

    def __init__(self, headers, body: bytes, content_type: str, charset: str | None, position: int) -> None:
        self._headers, self._uri = headers, None
        self.body, self.content_type, self.charset, self.position = body, content_type, charset, position

    @property
    def target_uri(self) -> str:
        if self._uri is None:
            self._uri = target_uri(self._headers.get("WARC-Target-URI", ""))
        return self._uri


def _count(errors: dict[str, int], reason: str) -> None:
    errors[reason] = errors.get(reason, 0) + 1


def _member_end(f, position: int) -> int | None:
    """Where the gzip member starting at ``position`` ends, or None if it is cut or corrupt."""
    d = zlib.decompressobj(wbits=31)
    f.seek(position)
    read = 0
    try:
        while chunk := f.read(_SCAN):
            d.decompress(chunk)
            if d.eof:
                return position + read + len(chunk) - len(d.unused_data)
            read += len(chunk)
    except zlib.error:
        return None
    return None


def _record_end(f, position: int) -> int | None:
    """Where the uncompressed record starting at ``position`` ends (after its blank-line trailer)."""
    f.seek(position)
    head = f.read(65536)
    split = head.find(b"\r\n\r\n")
    m = _CONTENT_LENGTH.search(head, 0, split) if split >= 0 else None
    if m is None:
        return None
    end = position + split + 4 + int(m.group(1))
    f.seek(end)
    trailer = f.read(4)
    return end + len(trailer) - len(trailer.lstrip(b"\r\n"))


def _next_start(f, after: int, gz: bool) -> int | None:
    """The first record start strictly after ``after``: a gzip member holding a WARC header, or a WARC line."""
    pos = after + 1
    while True:
        f.seek(pos)
        buf = f.read(_SCAN + 16)
        if not buf:
            return None
        if gz:
            i = buf.find(_GZ_MAGIC)
            while i >= 0 and i < _SCAN:
                try:
                    head = zlib.decompressobj(wbits=31).decompress(buf[i:i + 4096])
                except zlib.error:
                    head = b""
                if head.startswith(b"WARC/1."):
                    return pos + i
                i = buf.find(_GZ_MAGIC, i + 1)
        else:
            m = _WARC_START.search(buf, 0, _SCAN + 10)
            if m is not None:
                return pos + m.start()
        if len(buf) <= _SCAN:
            return None
        pos += _SCAN


def iter_records(path: str, kind: str, errors: dict[str, int], needle: bytes | None = None) -> Iterator[RawRecord]:
    """Complete records of ``kind`` ("metadata" for WAT, "response" for WARC) in ``path``; with ``needle``,
    only those whose body holds it (the others are read, checked for damage and passed over)."""
    gz = path.endswith(".gz")
    cut = "truncated_gz" if gz else "truncated_record"
    response = kind == "response"
    wanted = WarcRecordType.response if response else WarcRecordType.metadata
    with fsspec.open(path, "rb") as f:
        size = f.seek(0, 2)
        start = 0
        while start < size:
            last = None  # position of the last whole record FastWARC handed back, of any type
            short_at = None  # position of a record with a short body or a garbled header
            counted_short = False
            pending = None
            damaged = False
            f.seek(start)
            try:
                # one loop, no inner generator of (record, RawRecord) pairs: this runs once per record
                for rec in ArchiveIterator(f, parse_http=False, fsspec_args=False):  # HTTP: wanted records only
                    rtype = rec.record_type
                    if rtype != wanted:
                        if rtype == WarcRecordType.unknown or rtype == WarcRecordType.no_type:
                            short_at = rec.stream_pos  # a garbled header: no type
                            break
                        last = rec.stream_pos
                        continue
                    if response and rec.is_http:
                        rec.parse_http()
                    body = rec.reader.read()
                    length = rec.content_length
                    if length is not None and len(body) < length and _short(rec, body):
                        _count(errors, cut)
                        short_at, counted_short = rec.stream_pos, True
                        break
                    last = rec.stream_pos
                    if needle is not None and not _contains(body, needle):
                        continue
                    raw = RawRecord(rec.headers, body, (rec.http_content_type or "").lower() if response else "",
                                    rec.http_charset if response else None, last)
                    if pending is not None:
                        yield pending
                    pending = raw
            except (OSError, ValueError, EOFError, zlib.error):
                damaged = True
            end = None if last is None else (_member_end(f, last) if gz else _record_end(f, last))
            counted = short_at is not None and counted_short
            last_cut = end is None or end > size
            if pending is not None:
                if pending.position == last and last_cut and short_at is None:
                    _count(errors, cut)  # the file ends inside this record (or its gzip member)
                    counted = True
                else:
                    yield pending
            if end is not None and end > size:
                if not counted:
                    _count(errors, cut)
                return
            if short_at is None and not damaged and end is not None and _blank(f, end, size):
                return
            after = short_at if short_at is not None else (last if end is None else max(last, end - 1)) \
                if last is not None else start
            nxt = _next_start(f, after, gz)
            if not counted:
                looks_cut = nxt is None and _reaches_eof_cut(f, end, size, gz)
                _count(errors, cut if looks_cut else "corrupt_record")
            if nxt is None:
                return
            start = nxt


def _blank(f, end: int, size: int) -> bool:
    """True when nothing but line breaks follows ``end`` (a complete file)."""
    if size - end > 64:
        return False
    f.seek(end)
    return not f.read().strip()


def _reaches_eof_cut(f, end: int | None, size: int, gz: bool) -> bool:
    """True when the bytes after the last good record look like the start of a record cut by EOF."""
    if end is None:
        return True
    f.seek(end)
    tail = f.read(16)
    return tail.startswith(_GZ_MAGIC) if gz else tail.startswith(b"WARC/")


def target_uri(value: str | None) -> str:
    """The WARC-Target-URI value; WARC/1.0 writers such as wget wrap it in angle brackets."""
    value = (value or "").strip()
    if value.startswith("<") and value.endswith(">"):
        value = value[1:-1].strip()
    return value


def _short(rec, body: bytes) -> bool:
    # For HTTP records the WARC Content-Length covers the HTTP headers that FastWARC already consumed.
    if rec.is_http and rec.is_http_parsed:
        return False
    return len(body) < rec.content_length
