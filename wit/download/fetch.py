"""HTTP fetching with politeness: per-host limits (wit/download/hosts.py), opt-out headers checked
before the body, bounded reads, redirects, one deadline per attempt, the private-address guard and
retries with backoff. Every outcome is a reason code; no URL raises.

img2dataset's own fetch (urllib ``urlopen`` + ``r.read()``) cannot tell a truncated body from a
reset, follows up to 10 redirects silently and has no per-host limit, so wit fetches with
``http.client`` itself. The X-Robots-Tag opt-out reads the header as img2dataset's ``is_disallowed``
does (``robots_optout``; importing img2dataset for it cost every download worker ~4.4 s, since it
imports torch).

Each hop's URL is normalised (``wit.download.urls``) and its host resolved here; the connection goes
to the address that was checked, so a name cannot resolve to a public address for the guard and to a
private one for the connection. ``timeout`` bounds an attempt (DNS, connect, headers, body and
redirects): a watchdog thread shuts the socket of an attempt past its deadline, which a per-read
socket timeout cannot do against a server sending one byte a second.
"""

from __future__ import annotations

import heapq
import ipaddress
import http.client
import itertools
import logging
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass

import ada_url

from wit.download import urls
from wit.download.hosts import HostLimiter, LocalHostLimiter

log = logging.getLogger(__name__)

#: reasons worth another attempt (a later `--retry-failed` run re-attempts exactly these)
RETRYABLE = frozenset({"timeout", "connection_error", "http_500", "truncated"})
#: X-Robots-Tag directives that opt an image out of AI training (img2dataset's defaults)
OPTOUT_DIRECTIVES = frozenset({"noai", "noimageai", "noindex", "noimageindex"})


def robots_optout(values: list[str], user_agent_token: str, directives: frozenset[str] = OPTOUT_DIRECTIVES) -> bool:
    """True when one of the X-Robots-Tag header ``values`` opts out: a comma-separated directive list,
    optionally after ``token:``, which then applies only when it names ``user_agent_token``.

    As img2dataset reads it (tests compare both), but the token is matched trimmed and case-blind,
    so ``X-Robots-Tag: WIT : noai`` opts out of wit too. A directive with a colon of its own
    (``unavailable_after: DATE``) reads as a token that is not ours, as there."""
    token = user_agent_token.strip().lower()
    for value in values:
        head, colon, rest = value.partition(":")
        if colon and head.strip().lower() != token:
            continue
        listed = rest if colon else head
        if any(d.strip().lower() in directives for d in listed.split(",")):
            return True
    return False


@dataclass(frozen=True)
class FetchResult:
    url: str
    body: bytes | None
    reason: str  # "" when ok
    attempts: int = 1
    content_type: str = ""


class _Watchdog:
    """Shuts the socket of every attempt still open at its deadline (one daemon thread per process)."""

    def __init__(self) -> None:
        self._cv = threading.Condition()
        self._heap: list[tuple[float, int, list]] = []
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None

    def watch(self, deadline: float, conn: http.client.HTTPConnection) -> list:
        entry = [conn]
        with self._cv:
            heapq.heappush(self._heap, (deadline, next(self._seq), entry))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="wit-fetch-watchdog", daemon=True)
                self._thread.start()
            self._cv.notify()
        return entry

    @staticmethod
    def cancel(entry: list) -> None:
        entry[0] = None

    def _run(self) -> None:
        while True:
            with self._cv:
                while self._heap and self._heap[0][2][0] is None:
                    heapq.heappop(self._heap)
                if not self._heap:
                    self._cv.wait()
                    continue
                wait = self._heap[0][0] - time.monotonic()
                if wait > 0:
                    self._cv.wait(wait)
                    continue
                _, _, entry = heapq.heappop(self._heap)
                conn = entry[0]
            sock = getattr(conn, "raw_sock", None) if conn is not None else None
            if sock is not None:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


_WATCHDOG = _Watchdog()
#: getaddrinfo cannot be interrupted: lookups run here so an attempt can stop waiting for one
_RESOLVER = ThreadPoolExecutor(max_workers=16, thread_name_prefix="wit-dns")


class _Refused(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _connect(addrs: list[str], port: int, timeout: float) -> socket.socket:
    err: OSError | None = None
    for addr in addrs:
        try:
            sock = socket.create_connection((addr, port), timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return sock
        except OSError as e:
            err = e
    raise err or OSError("no address")


class _PinnedHTTP(http.client.HTTPConnection):
    """Connects to addresses checked beforehand; the Host header keeps the URL's host. ``raw_sock``
    outlives ``sock``, which http.client drops when a response reads until the connection closes."""

    addrs: list[str] = []
    raw_sock: socket.socket | None = None

    def connect(self) -> None:
        self.sock = self.raw_sock = _connect(self.addrs, self.port, self.timeout)


class _PinnedHTTPS(http.client.HTTPSConnection):
    addrs: list[str] = []
    raw_sock: socket.socket | None = None

    def connect(self) -> None:
        self.raw_sock = _connect(self.addrs, self.port, self.timeout)
        self.sock = self._context.wrap_socket(self.raw_sock, server_hostname=self.host)


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
    #: fetch from loopback, private, link-local, CGNAT, multicast and unspecified addresses
    allow_private_networks: bool = False
    #: networks (CIDR strings) fetched even when private, e.g. an in-house mirror
    allowed_networks: tuple[str, ...] = ()
    #: who enforces the per-host limits (None: this process alone, from the two fields above)
    limiter: HostLimiter | None = None

    def __post_init__(self) -> None:
        if self.limiter is None:
            self.limiter = LocalHostLimiter(self.per_host_concurrency, self.per_host_qps)
        self.user_agent = f"Mozilla/5.0 (compatible; {self.user_agent_token}; +https://github.com/wit)"
        self._exempt = tuple(ipaddress.ip_network(n, strict=False) for n in self.allowed_networks)

    def _allowed(self, ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
        return self.allow_private_networks or urls.is_public(ip) or any(
            ip.version == n.version and ip in n for n in self._exempt)

    def fetch(self, url: str) -> FetchResult:
        attempt, res = 0, None
        while True:
            attempt += 1
            res = self._follow(url)
            if res.reason not in RETRYABLE or attempt > self.retries:
                return FetchResult(res.url, res.body, res.reason, attempt, res.content_type)
            time.sleep(self.backoff * 2 ** (attempt - 1))

    def _follow(self, url: str) -> FetchResult:
        """One attempt: up to ``max_redirects`` hops, all within one ``timeout`` from the first slot."""
        deadline: list[float] = []
        for _ in range(self.max_redirects + 1):
            res, location = self._once(url, deadline)
            if location is None:
                return res
            try:
                url = ada_url.join_url(url, _header_text(location))
            except ValueError:
                return FetchResult(url, None, "bad_url")
        return FetchResult(url, None, "too_many_redirects")

    def _resolve(self, p: urls.ParsedURL, deadline: float) -> list[str]:
        """Addresses to connect to; refuses non-public ones unless ``allow_private_networks``."""
        if p.ip is not None:
            ips = [p.ip]
        else:
            fut = _RESOLVER.submit(socket.getaddrinfo, p.host, p.port, type=socket.SOCK_STREAM)
            try:
                infos = fut.result(timeout=max(0.0, deadline - time.monotonic()))
            except FutureTimeout:
                raise _Refused("timeout") from None
            except (OSError, UnicodeError):
                raise _Refused("connection_error") from None
            ips = [ipaddress.ip_address(info[4][0].split("%", 1)[0]) for info in infos]
        if not all(self._allowed(ip) for ip in ips):
            raise _Refused("private_address")
        return [str(ip) for ip in ips]

    def _once(self, url: str, deadline: list[float]) -> tuple[FetchResult, str | None]:
        p = urls.parse(url)
        if p is None:
            return FetchResult(url, None, "bad_url"), None
        url = p.href
        if p.ip is not None and not self._allowed(p.ip):
            return FetchResult(url, None, "private_address"), None  # no slot, no socket
        lease = self.limiter.acquire(f"{p.host}:{p.port}")
        if not deadline:
            deadline.append(time.monotonic() + self.timeout)
        end = deadline[0]
        conn = None
        watch = None
        try:
            addrs = self._resolve(p, end)
            remaining = end - time.monotonic()
            if remaining <= 0:
                return FetchResult(url, None, "timeout"), None
            conn_cls = _PinnedHTTPS if p.scheme == "https" else _PinnedHTTP
            conn = conn_cls(p.host, p.port, timeout=remaining)
            conn.addrs = addrs
            watch = _WATCHDOG.watch(end, conn)
            return self._exchange(conn, url, p.target, end)
        except _Refused as e:
            return FetchResult(url, None, e.reason), None
        except Exception as e:  # noqa: BLE001 - a reset, a shut socket at the deadline, a malformed answer
            if time.monotonic() >= end:
                return FetchResult(url, None, "timeout"), None
            if isinstance(e, http.client.IncompleteRead):
                return FetchResult(url, None, "truncated"), None
            if isinstance(e, (socket.timeout, TimeoutError)):
                return FetchResult(url, None, "timeout"), None
            if not isinstance(e, (ConnectionError, http.client.HTTPException, OSError)):
                log.warning("fetch %s: unexpected %s: %s", url, type(e).__name__, e)
            return FetchResult(url, None, "connection_error"), None
        finally:
            if watch is not None:
                _WATCHDOG.cancel(watch)
            if conn is not None:
                conn.close()
                if conn.raw_sock is not None:
                    conn.raw_sock.close()
            self.limiter.release(lease)

    def _exchange(self, conn: http.client.HTTPConnection, url: str, target: str,
                  end: float) -> tuple[FetchResult, str | None]:
        conn.request("GET", target, headers={"User-Agent": self.user_agent, "Accept": "image/*,*/*;q=0.5"})
        r = conn.getresponse()
        if r.status in (301, 302, 303, 307, 308):
            loc = r.getheader("Location")
            return FetchResult(url, None, "" if loc else "http_redirect_no_location"), loc
        if r.status != 200:
            if r.status >= 500:
                return FetchResult(url, None, "http_500"), None
            return FetchResult(url, None, "http_404" if r.status in (404, 410) else f"http_{r.status}"), None
        # Headers only so far: refuse before reading a byte of the body.
        if self.honor_robots and robots_optout(r.headers.get_all("X-Robots-Tag") or [], self.user_agent_token):
            return FetchResult(url, None, "robots_optout"), None
        ctype = (r.getheader("Content-Type") or "").split(";")[0].strip().lower()
        if ctype.startswith("text/"):
            return FetchResult(url, None, "not_an_image", content_type=ctype), None
        length = r.getheader("Content-Length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            return FetchResult(url, None, "too_large", content_type=ctype), None
        body = r.read(self.max_bytes + 1)
        if time.monotonic() >= end:  # a body without Content-Length cut by the watchdog reads as complete
            raise TimeoutError
        if len(body) > self.max_bytes:
            return FetchResult(url, None, "too_large", content_type=ctype), None
        if length is not None and length.isdigit() and len(body) < int(length):
            raise http.client.IncompleteRead(body, int(length) - len(body))
        return FetchResult(url, body, "", content_type=ctype), None


def _header_text(value: str) -> str:
    """A header value as text: http.client decodes bytes as Latin-1, servers send UTF-8."""
    try:
        return value.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return value
