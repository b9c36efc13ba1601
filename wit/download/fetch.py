"""HTTP fetching with politeness: per-host limits (wit/download/hosts.py), opt-out headers checked
before the body, bounded reads, redirects, timeouts and retries with backoff. Every outcome is a reason code.

img2dataset's own fetch (urllib ``urlopen`` + ``r.read()``) cannot tell a truncated body from a
reset, follows up to 10 redirects silently and has no per-host limit, so wit fetches with
``http.client`` itself and reuses img2dataset's X-Robots-Tag parser (``is_disallowed``).
"""

from __future__ import annotations

import http.client
import socket
import time
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

from img2dataset.downloader import is_disallowed

from wit.download.hosts import HostLimiter, LocalHostLimiter

#: reasons worth another attempt (a later `--retry-failed` run re-attempts exactly these)
RETRYABLE = frozenset({"timeout", "connection_error", "http_500", "truncated"})
#: X-Robots-Tag directives that opt an image out of AI training (img2dataset's defaults)
OPTOUT_DIRECTIVES = frozenset({"noai", "noimageai", "noindex", "noimageindex"})


@dataclass(frozen=True)
class FetchResult:
    url: str
    body: bytes | None
    reason: str  # "" when ok
    attempts: int = 1
    content_type: str = ""


@dataclass
class Fetcher:
    """Fetches one URL to bytes or a reason code; thread-safe (one instance per worker)."""

    timeout: float = 10.0
    retries: int = 2
    backoff: float = 0.5
    max_bytes: int = 20_000_000
    max_redirects: int = 5
    honor_robots: bool = True
    user_agent_token: str = "wit"
    per_host_concurrency: int = 8
    per_host_qps: float = 0.0
    #: who enforces the per-host limits (None: this process alone, from the two fields above)
    limiter: HostLimiter | None = None

    def __post_init__(self) -> None:
        if self.limiter is None:
            self.limiter = LocalHostLimiter(self.per_host_concurrency, self.per_host_qps)
        self.user_agent = f"Mozilla/5.0 (compatible; {self.user_agent_token}; +https://github.com/wit)"

    def fetch(self, url: str) -> FetchResult:
        attempt, res = 0, None
        while True:
            attempt += 1
            res = self._follow(url)
            if res.reason not in RETRYABLE or attempt > self.retries:
                return FetchResult(res.url, res.body, res.reason, attempt, res.content_type)
            time.sleep(self.backoff * 2 ** (attempt - 1))

    def _follow(self, url: str) -> FetchResult:
        for _ in range(self.max_redirects + 1):
            res, location = self._once(url)
            if location is None:
                return res
            url = urljoin(url, location)
        return FetchResult(url, None, "too_many_redirects")

    def _once(self, url: str) -> tuple[FetchResult, str | None]:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return FetchResult(url, None, "bad_url"), None
        host = parts.netloc.lower()
        conn_cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        lease = self.limiter.acquire(host)
        conn = conn_cls(parts.hostname, parts.port, timeout=self.timeout)
        try:
            conn.request("GET", path, headers={"User-Agent": self.user_agent, "Accept": "image/*,*/*;q=0.5"})
            r = conn.getresponse()
            if r.status in (301, 302, 303, 307, 308):
                loc = r.getheader("Location")
                return FetchResult(url, None, "" if loc else "http_redirect_no_location"), loc
            if r.status != 200:
                if r.status >= 500:
                    return FetchResult(url, None, "http_500"), None
                return FetchResult(url, None, "http_404" if r.status in (404, 410) else f"http_{r.status}"), None
            # Headers only so far: refuse before reading a byte of the body.
            if self.honor_robots and is_disallowed(r.headers, self.user_agent_token, OPTOUT_DIRECTIVES):
                return FetchResult(url, None, "robots_optout"), None
            ctype = (r.getheader("Content-Type") or "").split(";")[0].strip().lower()
            if ctype.startswith("text/"):
                return FetchResult(url, None, "not_an_image", content_type=ctype), None
            length = r.getheader("Content-Length")
            if length is not None and length.isdigit() and int(length) > self.max_bytes:
                return FetchResult(url, None, "too_large", content_type=ctype), None
            body = r.read(self.max_bytes + 1)
            if len(body) > self.max_bytes:
                return FetchResult(url, None, "too_large", content_type=ctype), None
            if length is not None and length.isdigit() and len(body) < int(length):
                return FetchResult(url, None, "truncated", content_type=ctype), None
            return FetchResult(url, body, "", content_type=ctype), None
        except http.client.IncompleteRead:
            return FetchResult(url, None, "truncated"), None
        except (socket.timeout, TimeoutError):
            return FetchResult(url, None, "timeout"), None
        except (ConnectionError, http.client.HTTPException, OSError):
            return FetchResult(url, None, "connection_error"), None
        finally:
            conn.close()
            self.limiter.release(lease)
