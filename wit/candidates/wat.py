"""(image URL, alt) pairs from Common Crawl WAT files: the ``IMG@/src`` links of each page."""

from __future__ import annotations

import functools
import json
import re
from typing import Iterator
from urllib.parse import urljoin, urlsplit

import orjson

from wit.candidates.crawl import iter_records

# A WAT record without this byte string has no image link: skip its JSON parse.
_IMG_MARK = b'"IMG@/src"'


def page_images(meta: dict) -> tuple[str, str, list[tuple[str, str]]]:
    """(page URL, base URL, [(src, alt)]) of one WAT metadata document; src as written in the page."""
    env = meta.get("Envelope") or {}
    page_url = (env.get("WARC-Header-Metadata") or {}).get("WARC-Target-URI") or ""
    html = ((env.get("Payload-Metadata") or {}).get("HTTP-Response-Metadata") or {}).get("HTML-Metadata") or {}
    base = ((html.get("Head") or {}).get("Base")) or ""
    links = html.get("Links") or []
    pairs = [(link.get("url") or "", link.get("alt") or "") for link in links
             if isinstance(link, dict) and link.get("path") == "IMG@/src"]
    return page_url, _base_url(page_url, base), pairs


def _base_url(page_url: str, base: str) -> str:
    return urljoin(page_url, base) if base and page_url else (base or page_url)


# No query, fragment, params or scheme, and nothing urlsplit removes (controls) in a reference.
_PLAIN_CHARS = re.compile(r"[^?#;:\x00-\x1f\x7f]+").fullmatch
_DOTS = ("", ".", "..")


def _plain_segments(segments: list[str]) -> bool:
    """No empty, "." or ".." segment (a last one may be empty: a trailing slash)."""
    return all(seg not in _DOTS for seg in segments[:-1]) and segments[-1] not in (".", "..")


@functools.lru_cache(maxsize=4096)
def _plain_base(base: str) -> tuple[str, str] | None:
    """(origin, directory) of an http(s) base whose path has no empty, "." or ".." segment and no
    params, so ``urljoin`` of a plain reference is ``origin + reference`` or ``directory + reference``."""
    try:
        parts = urlsplit(base)
    except ValueError:
        return None
    path = parts.path
    if parts.scheme not in ("http", "https") or not parts.netloc or ";" in path:
        return None
    if path and (path[0] != "/" or not _plain_segments(path.split("/")[1:])):
        return None
    origin = f"{parts.scheme}://{parts.netloc}"
    return origin, origin + path[:path.rfind("/") + 1] if path else origin + "/"


def resolve(base: str, src: str) -> str:
    """``src`` resolved against ``base`` as ``urljoin`` does; left relative when there is no base (dropped later).

    A plain reference (most image paths) against a plain http(s) base is joined by concatenation,
    which gives what ``urljoin`` gives (tests compare the two); anything else goes to ``urljoin``.
    """
    src = src.strip()
    if not base or src.startswith(("http://", "https://", "data:")):
        return src
    if _PLAIN_CHARS(src) and (plain := _plain_base(base)) is not None:
        if src[:2] == "//":  # network-path reference: the base's scheme, the rest as written
            if src[2:3] not in ("", "/") and src.isascii() and "[" not in src and "]" not in src:
                return plain[0][:plain[0].index(":") + 1] + src
        elif src[0] == "/":
            if _plain_segments(src.split("/")[1:]):
                return plain[0] + src
        else:
            rest = src
            while rest[:2] == "./":  # a leading "." segment resolves to the base's directory
                rest = rest[2:]
            if _plain_segments(rest.split("/")):
                return plain[1] + rest
    try:
        return urljoin(base, src)
    except ValueError:
        return src


def _loads(body: bytes):
    """The JSON document ``body``, or None if it is not JSON: orjson (~2x faster) for valid UTF-8 within its
    limits, else the standard parser with undecodable bytes as U+FFFD (the pair is then dropped as
    invalid_utf8, the rest kept), lone surrogate escapes, NaN and big integers as it allows them."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(body.decode("utf-8", "replace"))
    except ValueError:
        return None


def wat_pairs(path: str, errors: dict[str, int]) -> Iterator[tuple[str, str, str]]:
    """(url, alt, page_url) for every ``IMG@/src`` link in the WAT file at ``path``."""
    for rec in iter_records(path, "metadata", errors):
        if _IMG_MARK not in rec.body:
            continue
        meta = _loads(rec.body)
        if meta is None:
            errors["bad_json"] = errors.get("bad_json", 0) + 1
            continue
        if not isinstance(meta, dict):
            errors["bad_json"] = errors.get("bad_json", 0) + 1
            continue
        page_url, base, pairs = page_images(meta)
        page_url = page_url or rec.target_uri
        base = base or page_url
        for src, alt in pairs:
            yield resolve(base, src), alt, page_url
