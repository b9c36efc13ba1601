"""The closed set of drop reason codes a stage may write to the ledger's ``reason`` column.

A reason is a code, so ``GROUP BY reason`` counts like with like; what varies per row (which eval
image a copy matched) goes to the ledger's ``detail`` column. docs/pipelines.md lists the same set.
"""

from __future__ import annotations

import re

#: code -> (stage that writes it, what it means)
REASONS: dict[str, tuple[str, str]] = {
    # queries (Wikipedia pages)
    "bad_xml": ("queries", "a dump page that is not well-formed XML"),
    "namespace": ("queries", "a page outside the article namespace"),
    "redirect": ("queries", "a redirect page"),
    # candidates
    "empty_text": ("candidates", "no alt text"),
    "text_too_long": ("candidates", "alt text above max_text_chars"),
    "invalid_utf8": ("candidates", "alt text or URL that is not valid UTF-8"),
    "empty_url": ("candidates", "an image without a URL (an empty src; in a WAT, a URL that is not a string)"),
    "data_uri": ("candidates", "a data: URI instead of an image URL"),
    "bad_scheme": ("candidates", "a URL scheme other than http(s)"),
    "relative_url": ("candidates", "a URL without scheme and host"),
    "duplicate": ("candidates, match", "the same (url, text) already kept"),
    # match, balance
    "no_match": ("match", "the text contains no query"),
    "balanced_out": ("balance", "its entries' coins all landed above p_e (MetaCLIP Algorithm 1)"),
    # download
    "bad_url": ("download", "a URL that cannot be requested (malformed host, port, brackets, control characters)"),
    "private_address": ("download", "a loopback, private, link-local or other non-public address, refused before "
                                    "connecting (any redirect hop too; allow_private_networks: true lifts it)"),
    "internal_error": ("download", "an unexpected error on this one URL (logged with the URL); the part goes on"),
    "http_404": ("download", "404 or 410 from the server"),
    "http_500": ("download", "a 5xx from the server (retryable)"),
    "http_redirect_no_location": ("download", "a redirect without a Location header"),
    "too_many_redirects": ("download", "more redirects than max_redirects"),
    "robots_optout": ("download", "X-Robots-Tag noai / noimageai / noindex / noimageindex"),
    "not_an_image": ("download", "the body is not an image (e.g. HTML)"),
    "too_large": ("download", "more bytes than max_bytes"),
    "truncated": ("download", "the body ended before Content-Length (retryable)"),
    "timeout": ("download", "no answer within the timeout (retryable)"),
    "connection_error": ("download", "connection refused or reset (retryable)"),
    "decode_error": ("download", "an image type whose bytes do not decode"),
    "decompression_bomb": ("download", "more pixels than max_pixels, refused from the header"),
    # filter
    "caption_too_short": ("filter", "fewer caption characters than min_caption_chars"),
    "caption_too_long": ("filter", "more caption characters than max_caption_chars"),
    "too_many_pixels": ("filter", "more pixels than max_pixels"),
    "too_small": ("filter", "shorter side under min_side"),
    "aspect_ratio": ("filter", "aspect ratio above max_aspect"),
    "decode_failed": ("filter, dedupe", "the stored image does not decode"),
    "nsfw": ("filter", "NSFW hook score at or above nsfw_max_score"),
    "clip_score_low": ("filter", "CLIP score hook under clip_min_score"),
    # dedupe
    "eval_duplicate": ("dedupe", "a copy of an eval image; detail = '<set>:<item>'"),
    "near_duplicate": ("dedupe", "a near-duplicate of an earlier training image"),
}

#: other HTTP statuses are reported one code per status (``http_403``, ``http_429``, ...)
HTTP_STATUS = re.compile(r"http_[1-5]\d\d")


def is_reason(code: str) -> bool:
    """Whether ``code`` is in the closed set."""
    return code in REASONS or bool(HTTP_STATUS.fullmatch(code))
