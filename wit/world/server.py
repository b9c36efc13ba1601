"""A threaded loopback HTTP server for a generated mini-web: static images, pages, fault routes.

Routes (see docs/world.md): ``/img/<file>`` and ``/page/<file>`` serve files under the world
root; ``/fault/<kind>/<n>`` misbehaves as ``wit.world.reasons.FAULT_ROUTES`` says. The fault
bodies (images, HTML, the bomb PNG) are files the generator wrote; the manifest names them.
"""

from __future__ import annotations

import json
import logging
import mimetypes
import socket
import struct
import threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from wit.world.reasons import HOPS

log = logging.getLogger(__name__)

CONTENT_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".webp": "image/webp",
                 ".html": "text/html; charset=utf-8", ".bin": "image/jpeg"}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, addr, handler, root: Path, images: dict, slow_delay: float, serve_delay: float = 0.0):
        super().__init__(addr, handler)
        self.root = root
        self.images = images
        self.slow_delay = slow_delay
        self.serve_delay = serve_delay
        self.stopping = threading.Event()
        self.count_lock = threading.Lock()
        self.in_flight: dict[str, int] = {}
        self.max_in_flight: dict[str, int] = {}

    @contextmanager
    def counted(self, host: str):
        """Count a request as in flight for ``host`` (its Host header) while the block runs."""
        with self.count_lock:
            n = self.in_flight[host] = self.in_flight.get(host, 0) + 1
            self.max_in_flight[host] = max(self.max_in_flight.get(host, 0), n)
        try:
            yield
        finally:
            with self.count_lock:
                self.in_flight[host] -= 1

    def handle_error(self, request, client_address):  # clients hanging up mid-answer are routine here
        log.debug("request from %s failed", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format, *args):  # noqa: A002 - the base class's signature
        log.debug("%s %s", self.address_string(), format % args)

    def _send(self, code: int, body: bytes = b"", ctype: str = "text/plain", headers: dict | None = None,
              length: int | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _file(self, rel: str) -> tuple[bytes, str] | None:
        path = (self.server.root / rel).resolve()
        if self.server.root not in path.parents or not path.is_file():
            return None
        return path.read_bytes(), CONTENT_TYPES.get(path.suffix.lower()) or mimetypes.guess_type(path.name)[0] \
            or "application/octet-stream"

    def do_HEAD(self) -> None:  # noqa: N802
        self.do_GET()

    def do_GET(self) -> None:  # noqa: N802
        path = self.path.split("?", 1)[0].split("#", 1)[0]
        try:
            if path.startswith(("/img/", "/page/")):
                # Counted before a byte of the answer leaves: the client surely still holds its slot.
                with self.server.counted(self.headers.get("Host", "")):
                    found = self._file(path.lstrip("/"))
                    if self.server.serve_delay > 0:
                        self.server.stopping.wait(self.server.serve_delay)
                if found is None:
                    self._send(404, b"not found")
                else:
                    self._send(200, *found)
            elif path.startswith("/fault/"):
                self._fault(path)
            elif path == "/robots.txt":
                self._send(200, b"User-agent: *\nAllow: /\n")
            else:
                self._send(404, b"not found")
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _fault(self, path: str) -> None:
        parts = path.strip("/").split("/")  # fault, kind, n[, step]
        kind = parts[1] if len(parts) > 1 else ""
        base = "/".join(parts[:3])
        entry = self.server.images.get("/" + base)
        if entry is None or len(parts) < 3:
            self._send(404, b"no such fault route")
            return
        body = self._file(entry["body"]) if entry.get("body") else None
        if kind == "404":
            self._send(404, b"not found")
        elif kind == "500":
            self._send(500, b"internal server error")
        elif kind == "slow":
            # Sleep in slices so stop() is never held up by a sleeping handler.
            if not self.server.stopping.wait(self.server.slow_delay):
                self._send(200, *body)
            else:
                self.close_connection = True
        elif kind == "reset":
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.close_connection = True
            self.rfile.close()
            self.wfile.close()
            self.connection.close()
        elif kind == "truncated":
            data, ctype = body
            self._send(200, data[: len(data) // 2], ctype, length=len(data))
            self.close_connection = True
        elif kind in ("html", "wrongtype", "bomb", "large"):
            self._send(200, *body)
        elif kind == "robots":
            self._send(200, *body, headers={"X-Robots-Tag": entry["robots_tag"]})
        elif kind == "loop":
            nxt = f"/{base}/again" if len(parts) == 3 else f"/{base}"
            self._send(302, b"", headers={"Location": nxt})
        elif kind == "hop":
            left = int(parts[3]) if len(parts) > 3 else HOPS
            nxt = f"/{base}/{left - 1}" if left > 1 else entry["redirect_to"]
            self._send(302, b"", headers={"Location": nxt})
        else:
            self._send(404, b"no such fault route")


class WorldServer:
    """Serves a generated world on 127.0.0.1; ``start()``/``stop()`` or use it as a context manager."""

    def __init__(self, root: str | Path, port: int = 0, slow_delay: float = 5.0, serve_delay: float = 0.0):
        self.root = Path(root).resolve()
        self.port = port
        self.slow_delay = slow_delay
        self.serve_delay = serve_delay  # added latency on /img/ and /page/, like a distant host
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("WorldServer is not started")
        return f"http://127.0.0.1:{self._httpd.server_address[1]}"

    def start(self) -> "WorldServer":
        if self._httpd is not None:
            return self
        manifest = json.loads((self.root / "manifest.json").read_text())
        self._httpd = _Server(("127.0.0.1", self.port), _Handler, self.root, manifest["images"], self.slow_delay,
                               self.serve_delay)
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="wit-world-server", daemon=True)
        self._thread.start()
        log.info("mini-web served at %s", self.base_url)
        return self

    def max_in_flight(self) -> dict[str, int]:
        """Most /img/ and /page/ requests ever in flight at once, per Host header."""
        if self._httpd is None:
            return {}
        with self._httpd.count_lock:
            return dict(self._httpd.max_in_flight)

    def stop(self) -> None:
        if self._httpd is None:
            return
        self._httpd.stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)
        self._httpd = None
        self._thread = None

    def __enter__(self) -> "WorldServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
