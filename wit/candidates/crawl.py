"""Reading WARC/WAT records with FastWARC, counting damage instead of stopping at it.

FastWARC stops quietly at a truncated gzip member and may hand back the damaged record with a
short body, so completeness is checked here: a record whose body is shorter than its
Content-Length is ``truncated_record``; in a .gz file, a last member that does not decompress to
its end is ``truncated_gz``. Records before the damage are kept.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from typing import Iterator

import fsspec
from fastwarc.warc import ArchiveIterator, WarcRecordType


@dataclass
class RawRecord:
    target_uri: str
    body: bytes
    content_type: str
    charset: str | None
    position: int


def _gzip_member_complete(path: str, position: int) -> bool:
    """True if the gzip member starting at ``position`` of ``path`` decompresses to its end."""
    d = zlib.decompressobj(wbits=31)
    with fsspec.open(path, "rb") as f:
        f.seek(position)
        while chunk := f.read(1 << 20):
            d.decompress(chunk)
            if d.eof:
                return True
    return d.eof


def iter_records(path: str, kind: str, errors: dict[str, int]) -> Iterator[RawRecord]:
    """Complete records of ``kind`` ("metadata" for WAT, "response" for WARC) in ``path``."""
    record_type = WarcRecordType.metadata if kind == "metadata" else WarcRecordType.response
    pending: RawRecord | None = None
    with fsspec.open(path, "rb") as f:
        for rec in ArchiveIterator(f, record_types=record_type, parse_http=kind == "response",
                                   fsspec_args=False):
            body = rec.reader.read()
            if rec.content_length is not None and _short(rec, body):
                reason = "truncated_gz" if path.endswith(".gz") else "truncated_record"
                errors[reason] = errors.get(reason, 0) + 1
                continue
            ctype, charset = "", None
            if kind == "response":
                ctype = (rec.http_content_type or "").lower()
                charset = rec.http_charset
            if pending is not None:
                yield pending
            pending = RawRecord(target_uri(rec.headers.get("WARC-Target-URI", "")), body, ctype, charset,
                                rec.stream_pos)
    if pending is not None:
        # Only the last member can be cut short without FastWARC noticing.
        if path.endswith(".gz") and not _gzip_member_complete(path, pending.position):
            errors["truncated_gz"] = errors.get("truncated_gz", 0) + 1
            return
        yield pending


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
