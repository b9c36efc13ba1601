"""Download reason codes the mini-web's fault routes provoke, and the route kind for each.

Other stages (download, filter) must produce exactly these codes for these routes; tests check
the pipeline's outcome for each served path against ``manifest.json``.
"""

from __future__ import annotations

#: stable download reason code -> what the server does to provoke it
REASONS: dict[str, str] = {
    "http_404": "the server answers 404 Not Found",
    "http_500": "the server answers 500 Internal Server Error",
    "timeout": "the server waits longer than the client's timeout before answering",
    "connection_error": "the server resets the connection (SO_LINGER 0) without answering",
    "truncated": "the body ends before the declared Content-Length and the connection closes",
    "not_an_image": "an HTML page is served where an image was expected",
    "decode_error": "Content-Type says image/jpeg but the body is not a decodable image",
    "too_many_redirects": "a redirect loop",
    "robots_optout": "the image carries X-Robots-Tag: noai or noimageai",
    "decompression_bomb": "a small PNG whose header declares 20000x20000 pixels",
    "too_large": "a real image of about 3 MB, above a max_bytes of 2,000,000",
}

#: fault route kind (``/fault/<kind>/<n>``) -> the reason code a downloader must report ("ok": none)
FAULT_ROUTES: dict[str, str] = {
    "404": "http_404",
    "500": "http_500",
    "slow": "timeout",
    "reset": "connection_error",
    "truncated": "truncated",
    "html": "not_an_image",
    "wrongtype": "decode_error",
    "loop": "too_many_redirects",
    "robots": "robots_optout",
    "bomb": "decompression_bomb",
    "large": "too_large",
    "hop": "ok",  # three redirects ending at a real image
}

#: redirects on the /fault/hop route before the image
HOPS = 3
#: side of the square the decompression-bomb PNG declares
BOMB_SIDE = 20_000
#: approximate size of the /fault/large body
LARGE_BYTES = 3_000_000
