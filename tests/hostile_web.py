"""A hostile web on loopback: dripping bodies, slow headers, redirects to private addresses, huge
PNGs and bad content, served by a real HTTP server that counts every request it receives."""

from __future__ import annotations

import io
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from PIL import Image


def jpeg(w: int = 64, h: int = 48, color=(30, 120, 200)) -> bytes:
    b = io.BytesIO()
    Image.new("RGB", (w, h), color).save(b, "JPEG", quality=90)
    return b.getvalue()


def big_png(w: int, h: int) -> bytes:
    """A w x h gradient PNG: megapixels on decode, a small file on the wire."""
    img = Image.linear_gradient("L").resize((w, h)).convert("RGB")
    b = io.BytesIO()
    img.save(b, "PNG", compress_level=1)
    return b.getvalue()


class HostileHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):  # quiet
        pass

    def _send(self, code: int, body: bytes = b"", ctype: str = "image/jpeg", extra: dict | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _drip(self, data: bytes, every: float) -> None:
        try:
            for i in range(len(data)):
                self.wfile.write(data[i:i + 1])
                self.wfile.flush()
                time.sleep(every)
        except OSError:
            pass

    def do_GET(self):  # noqa: C901 - a route table
        srv: HostileServer = self.server.owner
        p = self.path
        srv.record(p)
        if p.startswith(("/img/", "/uni/", "/sp/")):
            self._send(200, jpeg())
        elif p == "/drip":  # headers at once, then one byte every 0.25 s of a 400-byte body
            self.send_response(200)
            self.send_header("Content-Type", "image/jpeg")
            self.send_header("Content-Length", "400")
            self.end_headers()
            self._drip(jpeg()[:400], 0.25)
        elif p == "/drip-close":  # no Content-Length: the body ends when the connection closes
            self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nConnection: close\r\n\r\n")
            self._drip(jpeg()[:400], 0.25)
            self.close_connection = True
        elif p == "/slow-headers":  # the status line and headers, one byte every 0.25 s
            self._drip(b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nX-Pad: " + b"a" * 200 + b"\r\n\r\n", 0.25)
            self.close_connection = True
        elif p.startswith("/redirect/"):
            self._send(302, extra={"Location": srv.redirects[p.split("/", 2)[2]]})
        elif p.startswith("/huge/"):
            self._send(200, srv.huge_png, "image/png")
        elif p == "/garbage":
            self._send(200, b"\x00\x01 definitely not an image " * 40, "image/jpeg")
        elif p == "/empty":
            self._send(200, b"", "image/jpeg")
        elif p == "/html":
            self._send(200, b"<html>hi</html>", "text/html")
        elif p == "/reset":
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
        else:
            self._send(404, b"", "text/plain")


class HostileServer:
    """``start()`` on ``host`` (a port is picked); ``hits`` counts requests per raw request path."""

    def __init__(self, host: str = "127.0.0.1", huge: tuple[int, int] = (64, 64)) -> None:
        self.host = host
        self.hits: dict[str, int] = {}
        self.redirects: dict[str, str] = {}
        self.huge_png = big_png(*huge)
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None

    def record(self, path: str) -> None:
        with self._lock:
            self.hits[path] = self.hits.get(path, 0) + 1

    @property
    def total(self) -> int:
        return sum(self.hits.values())

    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def base(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> "HostileServer":
        self._httpd = ThreadingHTTPServer((self.host, 0), HostileHandler)
        self._httpd.daemon_threads = True
        self._httpd.owner = self
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
