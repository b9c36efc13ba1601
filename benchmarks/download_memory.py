"""Peak memory of `wit download` on huge images: the per-worker pixel budget against no budget.

Serves ``--images`` PNGs of ``--side`` x ``--side`` pixels (a gradient: megapixels on decode, a
small file on the wire; just under the default ``max_pixels`` at 7000) from a loopback HTTP server,
then runs ``wit download`` on them as a subprocess, once with the default settings and once with
``decode_pixel_budget`` set above what all threads can hold (every image decoded at once, as
before the budget), and prints each run's peak RSS (the child's ``ru_maxrss``) and wall time.
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pyarrow as pa
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _png(side: int) -> bytes:
    b = io.BytesIO()
    Image.linear_gradient("L").resize((side, side)).convert("RGB").save(b, "PNG", compress_level=1)
    return b.getvalue()


def _serve(body: bytes) -> ThreadingHTTPServer:
    class H(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd


def _run(urls: Path, out: Path, extra: list[str]) -> tuple[float, float]:
    """(peak RSS in GB, wall s) of one `wit download` subprocess."""
    cmd = [sys.executable, "-m", "wit.cli", "download", "--urls", str(urls), "--out", str(out), "--no-progress",
           "--set", "allow_private_networks=true", *extra]
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)  # ru_maxrss of this child alone, in kB
    if status != 0:
        raise SystemExit(f"wit download failed ({status})")
    return usage.ru_maxrss / 1e6, time.monotonic() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--side", type=int, default=7000)
    args = ap.parse_args()
    from wit import schemas
    from wit.io import folders
    from wit.records import candidate_uid

    body = _png(args.side)
    httpd = _serve(body)
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        urls = [f"{base}/{i}.png" for i in range(args.images)]
        texts = [f"huge {i}" for i in range(args.images)]
        t = pa.table({"uid": [candidate_uid(u, x) for u, x in zip(urls, texts)], "url": urls, "text": texts,
                      "page_url": [""] * len(urls), "source": ["bench"] * len(urls),
                      "query_ids": [[1]] * len(urls)}, schema=schemas.MATCHED)
        folders.write_parquet(str(tmp / "in" / "part-00000.parquet"), t)
        unbounded = str(args.images * args.side * args.side + 1)
        rows = []
        for name, extra in (("default (budget 100 M px)", []), ("no budget", ["--set", f"decode_pixel_budget={unbounded}"])):
            gb, wall = _run(tmp / "in", tmp / name.split()[0], extra)
            n = folders.read_parquet(str(tmp / name.split()[0])).num_rows
            rows.append((name, gb, wall, n))
    httpd.shutdown()
    print("## download_memory")
    print(f"{args.images} PNGs of {args.side}x{args.side} ({len(body) / 1e6:.1f} MB each on the wire), "
          f"threads 16, `wit download` local runner")
    print("| settings | peak RSS | wall | images kept |")
    print("|---|---|---|---|")
    for name, gb, wall, n in rows:
        print(f"| {name} | {gb:.2f} GB | {wall:.1f} s | {n} |")
    print(f"peak RSS ratio (no budget / default): {rows[1][1] / rows[0][1]:.2f}x")


if __name__ == "__main__":
    main()
