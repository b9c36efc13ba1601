"""(image URL, alt) pairs from Common Crawl WAT files: the ``IMG@/src`` links of each page."""

from __future__ import annotations

import functools
import json
import re
from typing import Iterator
from urllib.parse import urljoin, urlsplit

import orjson
import simdjson

from wit.candidates.crawl import iter_records

# A WAT record without this byte string has no image link: skip its JSON parse.
_IMG_MARK = b'"IMG@/src"'


def page_images(meta: dict) -> tuple[str, str, list[tuple[str, str]]]:
    """(page URL, base URL, [(src, alt)]) of one WAT metadata document; src as written in the page.

    The document is untrusted: a level that is not an object reads as empty, a URL or alt that is
    not a string as "" (an image without a URL is then dropped as ``empty_url``)."""
    env = _object(meta.get("Envelope"))
    page_url = _string(_object(env.get("WARC-Header-Metadata")).get("WARC-Target-URI"))
    html = _object(_object(_object(env.get("Payload-Metadata")).get("HTTP-Response-Metadata")).get("HTML-Metadata"))
    base = _string(_object(html.get("Head")).get("Base"))
    links = html.get("Links")
    pairs = [(_string(link.get("url")), _string(link.get("alt"))) for link in links
             if isinstance(link, dict) and link.get("path") == "IMG@/src"] if isinstance(links, list) else []
    return page_url, _base_url(page_url, base), pairs


def _object(value) -> dict:
    return value if isinstance(value, dict) else {}


def _string(value) -> str:
    return value if isinstance(value, str) else ""


def _simd_page_images(parser, body: bytes) -> tuple[str, str, list[tuple[str, str]]] | None:
    """``page_images`` of the JSON document ``body``, reading only the fields it needs (simdjson builds
    no Python object for the rest: ~1.5x orjson + ``page_images`` on a CC page); None where the document
    is not the plain case (not JSON simdjson takes, not UTF-8, a level of the path missing or not an
    object), which the full parse then decides as before; a URL or alt that is not a string reads as ""
    on both paths. Duplicate keys are the one difference: simdjson takes a key's first value, the standard
    parser its last."""
    try:
        doc = parser.parse(body)
        env = doc["Envelope"]  # item lookups, not at_pointer: ~0.3 us less each
        page_url = _string(env["WARC-Header-Metadata"]["WARC-Target-URI"])
        html = env["Payload-Metadata"]["HTTP-Response-Metadata"]["HTML-Metadata"]
        if not isinstance(html, simdjson.Object):
            return None
        head = html.get("Head")
        if head and not isinstance(head, simdjson.Object):
            return None
        # a missing key costs simdjson's .get ~2.5 us (an exception inside); a look at the keys ~0.25
        base = _string(head.get("Base")) if head and "Base" in head.keys() else ""
        links = html.get("Links")
        pairs = []
        if links:
            for link in links:  # link["path"] on a link that is no object, or has none: the full parse decides
                if link["path"] == "IMG@/src":
                    img = link.as_dict()  # a few keys, some may be missing
                    pairs.append((_string(img.get("url")), _string(img.get("alt"))))
    except (ValueError, TypeError, KeyError, AttributeError, RuntimeError, IndexError):
        return None  # simdjson: KeyError for a missing field, RuntimeError for big integers
    return page_url, _base_url(page_url, base), pairs


def _base_url(page_url: str, base: str) -> str:
    return urljoin(page_url, base) if base and page_url else (base or page_url)


# No query, fragment, params or scheme, and nothing urlsplit removes (controls) in a reference.
_PLAIN_CHARS = re.compile(r"[^?#;:\x00-\x1f\x7f]+").fullmatch


def _plain_segments(path: str) -> bool:
    """The "/"-separated segments of ``path`` hold no empty, "." or ".." one (the last may be empty: a
    trailing slash). On the string: an empty segment before the last is a "//" once a "/" is put in
    front; a "." or ".." one is "/./" or "/../" once a "/" is put on both ends."""
    walled = "/" + path + "/"
    return "//" not in walled[:-1] and "/./" not in walled and "/../" not in walled


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
    if path and (path[0] != "/" or not _plain_segments(path[1:])):
        return None
    origin = f"{parts.scheme}://{parts.netloc}"
    return origin, origin + path[:path.rfind("/") + 1] if path else origin + "/"


def resolve(base: str, src: str) -> str:
    """``src`` resolved against ``base`` as ``urljoin`` does; left relative when there is no base (dropped later).

    A plain reference (most image paths) against a plain http(s) base is joined by concatenation,
    which gives what ``urljoin`` gives (tests compare the two); anything else goes to ``urljoin``.
    """
    src = src.strip()
    if not src:  # no URL: an empty src is not the page itself (browsers fetch nothing)
        return ""
    if not base or src.startswith(("http://", "https://", "data:")):
        return src
    if _PLAIN_CHARS(src) and (plain := _plain_base(base)) is not None:
        if src[:2] == "//":  # network-path reference: the base's scheme, the rest as written
            if src[2:3] not in ("", "/") and src.isascii() and "[" not in src and "]" not in src:
                return plain[0][:plain[0].index(":") + 1] + src
        elif src[0] == "/":
            if _plain_segments(src[1:]):
                return plain[0] + src
        else:
            rest = src
            while rest[:2] == "./":  # a leading "." segment resolves to the base's directory
                rest = rest[2:]
            if _plain_segments(rest):
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
    parser = simdjson.Parser()
    for rec in iter_records(path, "metadata", errors, needle=_IMG_MARK):
        found = _simd_page_images(parser, rec.body)
        if found is None:
            meta = _loads(rec.body)
            if meta is None or not isinstance(meta, dict):
                errors["bad_json"] = errors.get("bad_json", 0) + 1
                continue
            found = page_images(meta)
        page_url, base, pairs = found
        page_url = page_url or rec.target_uri
        base = base or page_url
        for src, alt in pairs:
            yield resolve(base, src), alt, page_url
