"""The one streaming reader of webdataset tars: samples {__key__, __url__, ext: bytes} in file order.

Used by the trainer's loader (wit/train/data.py), the overlap detector and report, and the eval-set
reader of the dedupe index.

Python's ``tarfile`` (which webdataset wraps) spends ~0.3 ms per sample on header objects; the
trainer's loader shares two cores with the training step, so this reads the 512-byte headers
itself: ustar (with name prefix), pax extended headers (path, size) and GNU long names, with the
header checksum verified. Grouping follows webdataset: the key is the path up to the first dot of
the file name, suffixes are lower-cased, and ``__...__`` metadata members are skipped.
"""

from __future__ import annotations

import re
from typing import BinaryIO, Iterable, Iterator

BLOCK = 512
_ZERO = bytes(BLOCK)
_KEY_EXT = re.compile(r"^((?:.*/|)[^.]+)[.]([^/]*)$")
_META = re.compile(r"__[^/]*__($|/)")
_REGULAR = (b"0", b"\0", b"7")


class TarFormatError(ValueError):
    """A tar that cannot be read: bad header checksum, truncated member or malformed pax record."""


def _number(field: bytes) -> int:
    if field[0] & 0x80:  # GNU base-256 for sizes past 8 GiB
        return int.from_bytes(field[1:], "big")
    digits = field.split(b"\0", 1)[0].strip()
    return int(digits, 8) if digits else 0


def _pax(data: bytes) -> dict[bytes, bytes]:
    """``"%d key=value\\n"`` records of a pax extended header."""
    out, pos = {}, 0
    while pos < len(data) and data[pos:pos + 1] != b"\0":
        space = data.index(b" ", pos)
        end = pos + int(data[pos:space])
        if end <= space or data[end - 1:end] != b"\n":
            raise TarFormatError("malformed pax record")
        key, _, value = data[space + 1:end - 1].partition(b"=")
        out[key] = value
        pos = end
    return out


def members(stream: BinaryIO, wanted: Iterable[str] | None = None,
            chunk: int = 1 << 20) -> Iterator[tuple[str, bytes | None]]:
    """(name, data) of each regular file; data is None (never sliced out) for suffixes not in ``wanted``."""
    wanted = None if wanted is None else {w.lower() for w in wanted}
    long_name: str | None = None
    pax: dict[bytes, bytes] = {}
    # Parse out of ~1 MiB chunks: one read() per chunk instead of two per member.
    buf, pos = b"", 0
    while True:
        if len(buf) - pos < BLOCK:
            buf, pos = buf[pos:] + stream.read(chunk), 0
        header = buf[pos:pos + BLOCK]
        if not header or header == _ZERO:
            return
        if len(header) < BLOCK:
            raise TarFormatError("truncated tar header")
        if _number(header[148:156]) != sum(header) - sum(header[148:156]) + 256:
            raise TarFormatError("tar header checksum mismatch")
        kind = header[156:157]
        size = int(pax[b"size"]) if b"size" in pax else _number(header[124:136])
        start, pos = pos + BLOCK, pos + BLOCK + size + (-size % BLOCK)
        if pos > len(buf):
            buf = buf[start:] + _read_at_least(stream, pos - len(buf), chunk)
            start, pos = 0, pos - start
        if kind in (b"x", b"g", b"L", b"K"):
            if kind == b"x":
                pax = _pax(buf[start:start + size])
            elif kind == b"L":
                long_name = buf[start:start + size].rstrip(b"\0").decode("utf-8", "surrogateescape")
            continue
        if b"path" in pax:
            name = pax[b"path"].decode("utf-8", "surrogateescape")
        elif long_name is not None:
            name = long_name
        else:
            name = header[:100].split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
            if header[257:263] == b"ustar\0":
                prefix = header[345:500].split(b"\0", 1)[0]
                if prefix:
                    name = prefix.decode("utf-8", "surrogateescape") + "/" + name
        pax, long_name = {}, None
        if kind not in _REGULAR:
            continue
        if wanted is not None and name.rsplit("/", 1)[-1].partition(".")[2].lower() not in wanted:
            yield name, None
            continue
        yield name, buf[start:start + size]


def _read_at_least(stream: BinaryIO, n: int, chunk: int) -> bytes:
    """``n`` more bytes or more (a whole chunk when there is one); fewer means the tar is truncated."""
    data = stream.read(max(n, chunk))
    while len(data) < n:
        more = stream.read(max(n - len(data), chunk))
        if not more:
            raise TarFormatError("truncated tar member")
        data += more
    return data


def samples(url: str, stream: BinaryIO, wanted: Iterable[str] | None = None) -> Iterator[dict]:
    """Group a tar's members into webdataset samples; suffixes outside ``wanted`` are left out."""
    current: dict | None = None
    for name, data in members(stream, wanted):
        if ("/" not in name and name.startswith("__") and name.endswith("__")) or _META.match(name):
            continue
        match = _KEY_EXT.match(name)
        if not match:
            continue
        key, suffix = match.group(1), match.group(2).lower()
        if current is None or key != current["__key__"]:
            if current is not None:
                yield current
            current = {"__key__": key, "__url__": url}
        if data is None:
            continue
        if suffix in current:
            raise ValueError(f"{url}: duplicate file name {name} in tar")
        current[suffix] = data
    if current is not None:
        yield current


def shard_samples(urls: Iterable[str], wanted: Iterable[str] | None = None) -> Iterator[dict]:
    """The samples of each shard in turn (local paths or any fsspec URL), streamed, never copied."""
    import fsspec

    for url in urls:
        with fsspec.open(url, "rb", block_size=1 << 20) as raw:
            yield from samples(url, raw, wanted)
