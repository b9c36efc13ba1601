"""Download stage: every fault route ends with its reason code; politeness; retry-failed; resume."""

from __future__ import annotations

import hashlib
import io
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pyarrow as pa
import pytest
from PIL import Image

from wit import schemas
from wit.config import DownloadConfig
from wit.download.fetch import Fetcher
from wit.download.image import prepare, target_size
from wit.download.stage import DownloadStage
from wit.io import folders, ledger
from wit.records import candidate_uid
from wit.runners import run_stage


def _jpeg(w: int, h: int, color=(200, 30, 30)) -> bytes:
    b = io.BytesIO()
    Image.new("RGB", (w, h), color).save(b, "JPEG", quality=90)
    return b.getvalue()


def _bomb_png(w: int = 20000, h: int = 20000) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


class _Handler(BaseHTTPRequestHandler):
    """Fault routes shaped like the mini-web's (wit.world) for a self-contained first pass."""

    protocol_version = "HTTP/1.1"
    hits: dict[str, int] = {}
    active = 0
    max_active = 0
    lock = threading.Lock()

    def log_message(self, *a):  # quiet
        pass

    def _send(self, code: int, body: bytes, ctype: str = "image/jpeg", extra: dict | None = None, length=None):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body) if length is None else length))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):  # noqa: C901 - a route table
        p = self.path
        with self.lock:
            _Handler.hits[p] = _Handler.hits.get(p, 0) + 1
        if p.startswith("/img/"):
            with self.lock:  # requests in flight, measured while the client surely holds its slot
                _Handler.active += 1
                _Handler.max_active = max(_Handler.max_active, _Handler.active)
            time.sleep(0.02)
            with self.lock:
                _Handler.active -= 1
            self._send(200, _jpeg(640, 480))
        elif p == "/fault/404":
            self._send(404, b"nope", "text/plain")
        elif p == "/fault/500":
            self._send(500, b"boom", "text/plain")
        elif p == "/fault/flaky":  # 500 on the first hit, then an image
            self._send(500 if _Handler.hits[p] == 1 else 200, _jpeg(300, 200))
        elif p == "/fault/slow":
            time.sleep(4.0)  # well past FAST's timeout, so a loaded machine cannot blur the two
            self._send(200, _jpeg(50, 50))
        elif p == "/fault/reset":
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.shutdown(socket.SHUT_RDWR)
        elif p == "/fault/truncated":
            self._send(200, _jpeg(200, 200)[:500], length=5000)
            self.connection.shutdown(socket.SHUT_RDWR)
        elif p == "/fault/html":
            self._send(200, b"<html><body>hi</body></html>", "text/html")
        elif p == "/fault/wrongtype":
            self._send(200, b"this is not a jpeg at all" * 10, "image/jpeg")
        elif p.startswith("/fault/loop"):
            self._send(302, b"", extra={"Location": "/fault/loop"})
        elif p.startswith("/fault/hop"):
            n = int(p.rsplit("/", 1)[1]) if p.count("/") == 3 else 3
            self._send(302, b"", extra={"Location": f"/fault/hop/{n - 1}" if n > 1 else "/img/hop.jpg"})
        elif p == "/fault/robots":
            self._send(200, _jpeg(100, 100), extra={"X-Robots-Tag": "noai"})
        elif p == "/fault/bomb":
            self._send(200, _bomb_png(), "image/png")
        elif p == "/fault/large":
            self._send(200, b"\xff\xd8" + b"0" * 3_000_000)
        else:
            self._send(404, b"", "text/plain")


@pytest.fixture(scope="module")
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.daemon_threads = True
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


EXPECTED = {
    "/img/a.jpg": "", "/fault/404": "http_404", "/fault/500": "http_500", "/fault/slow": "timeout",
    "/fault/reset": "connection_error", "/fault/truncated": "truncated", "/fault/html": "not_an_image",
    "/fault/wrongtype": "decode_error", "/fault/loop": "too_many_redirects", "/fault/hop": "",
    "/fault/robots": "robots_optout", "/fault/bomb": "decompression_bomb", "/fault/large": "too_large",
}
# A 2 s timeout: answers on a loaded 2-core CI machine can take over half a second.
FAST = DownloadConfig(allow_private_networks=True, timeout=2.0, retries=0, backoff=0.01, max_bytes=2_000_000, image_size=64)


def _urls(folder, base: str, paths: list[str], parts: int = 1) -> list[str]:
    out = []
    for k in range(parts):
        chunk = paths[k::parts]
        urls = [base + p for p in chunk]
        texts = [f"a photo of {p}" for p in chunk]
        t = pa.table({"uid": [candidate_uid(u, x) for u, x in zip(urls, texts)], "url": urls, "text": texts,
                      "page_url": [base + "/page"] * len(urls), "source": ["test"] * len(urls),
                      "query_ids": [[1, 2]] * len(urls)}, schema=schemas.MATCHED)
        path = str(folder / f"part-{k:05d}.parquet")
        folders.write_parquet(path, t)
        out.append(path)
    return out


def test_every_fault_route_gets_its_reason(tmp_path, server):
    (tmp_path / "in").mkdir()
    inputs = _urls(tmp_path / "in", server, list(EXPECTED))
    rep = run_stage(DownloadStage(cfg=FAST), inputs, str(tmp_path / "out"), ledger_dir=str(tmp_path / "ledger"),
                    progress=False)
    led = folders.read_parquet(str(tmp_path / "ledger")).to_pylist()
    got = {r["uid"]: r["reason"] for r in led}
    for p, want in EXPECTED.items():
        uid = candidate_uid(server + p, f"a photo of {p}")
        assert got[uid] == want, f"{p}: expected {want!r}, got {got[uid]!r}"
    assert rep.kept == 2 and rep.dropped == len(EXPECTED) - 2
    kept = folders.read_parquet(str(tmp_path / "out"))
    assert kept.schema.names[: len(schemas.DOWNLOADED)] == schemas.DOWNLOADED.names
    row = kept.to_pylist()[0]
    assert (row["orig_width"], row["orig_height"]) == (640, 480) and min(row["width"], row["height"]) == 64
    assert Image.open(io.BytesIO(row["jpg"])).size == (row["width"], row["height"])
    # img2dataset's sha256: of the bytes the server sent, not of the re-encoded JPEG
    assert row["sha256"] == hashlib.sha256(_jpeg(640, 480)).hexdigest() != hashlib.sha256(row["jpg"]).hexdigest()
    assert all(c.ok for c in ledger.reconcile(str(tmp_path / "ledger"), {"download": str(tmp_path / "out")}).values())


def test_decode_threads_bound_the_images_prepared_at_once(tmp_path, server, monkeypatch):
    """16 fetch threads, 2 decode turns: never more than 2 images decode at once, and all are kept."""
    import wit.download.stage as stage_mod

    inside, most, lock = [0], [0], threading.Lock()
    real = stage_mod.prepare

    def watched(*a, **kw):
        with lock:
            inside[0] += 1
            most[0] = max(most[0], inside[0])
        time.sleep(0.01)  # long enough for the other fetch threads to arrive
        try:
            return real(*a, **kw)
        finally:
            with lock:
                inside[0] -= 1

    monkeypatch.setattr(stage_mod, "prepare", watched)
    (tmp_path / "in").mkdir()
    inputs = _urls(tmp_path / "in", server, [f"/img/d{i}.jpg" for i in range(40)])
    cfg = FAST.model_copy(update={"threads": 16, "per_host_concurrency": 16, "decode_threads": 2})
    rep = run_stage(DownloadStage(cfg=cfg), inputs, str(tmp_path / "out"), ledger_dir=str(tmp_path / "ledger"),
                    progress=False)
    assert rep.kept == 40 and most[0] == 2


def test_retries_with_backoff_recover_a_flaky_url(server):
    f = Fetcher(timeout=1, retries=2, backoff=0.01, allow_private_networks=True)
    res = f.fetch(server + "/fault/flaky")
    assert res.reason == "" and res.attempts == 2 and res.body[:2] == b"\xff\xd8"
    assert f.fetch(server + "/fault/404").attempts == 1  # not retryable


def test_per_host_concurrency_is_respected(server):
    _Handler.max_active = 0
    f = Fetcher(timeout=2, retries=0, per_host_concurrency=2, allow_private_networks=True)
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(16) as pool:
        res = list(pool.map(f.fetch, [f"{server}/img/c{i}.jpg" for i in range(24)]))
    assert all(r.reason == "" for r in res)
    assert _Handler.max_active <= 2 and max(f.limiter.max_seen.values()) == 2


def test_per_host_rate_limit(server):
    f = Fetcher(timeout=2, retries=0, per_host_concurrency=8, per_host_qps=20, allow_private_networks=True)
    t0 = time.perf_counter()
    for i in range(6):
        f.fetch(f"{server}/img/r{i}.jpg")
    assert time.perf_counter() - t0 >= 5 / 20 - 0.01


def test_robots_optout_can_be_disabled(server):
    assert Fetcher(honor_robots=False, retries=0, allow_private_networks=True).fetch(server + "/fault/robots").reason == ""


def test_decode_turns_default_to_the_cores_the_cgroup_quota_allows(tmp_path, monkeypatch):
    from wit.download.stage import usable_cores

    affinity = usable_cores(str(tmp_path / "none"))  # no cgroup files: the affinity mask
    assert affinity >= 1
    (tmp_path / "v2").mkdir()
    (tmp_path / "v2" / "cpu.max").write_text("150000 100000\n")  # docker --cpus 1.5
    assert usable_cores(str(tmp_path / "v2")) == min(affinity, 2)
    (tmp_path / "v2" / "cpu.max").write_text("max 100000\n")
    assert usable_cores(str(tmp_path / "v2")) == affinity
    (tmp_path / "v1" / "cpu").mkdir(parents=True)
    (tmp_path / "v1" / "cpu" / "cpu.cfs_quota_us").write_text("50000\n")
    (tmp_path / "v1" / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    assert usable_cores(str(tmp_path / "v1")) == 1
    (tmp_path / "v1" / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")
    assert usable_cores(str(tmp_path / "v1")) == affinity
    monkeypatch.setenv("WIT_WORKER_CPUS", "1")  # a Ray actor of num_cpus=1 on a node of many cores
    assert usable_cores(str(tmp_path / "v1")) == 1
    monkeypatch.setenv("WIT_WORKER_CPUS", "0.5")
    assert usable_cores(str(tmp_path / "none")) == 1
    monkeypatch.setenv("WIT_WORKER_CPUS", "not a number")
    assert usable_cores(str(tmp_path / "none")) == affinity


def test_robots_optout_reads_the_header_as_img2dataset_does():
    """wit's X-Robots-Tag reading against img2dataset's ``is_disallowed`` on every combination of the
    header shapes seen on the web (one or several headers, token or none, cases, spaces, other
    directives, a dated one with its own colon); wit also matches a token written with spaces."""
    import itertools
    from email.message import Message

    from img2dataset.downloader import is_disallowed

    from wit.download.fetch import OPTOUT_DIRECTIVES, robots_optout

    shapes = ["noai", "NoImageAI", "noindex, nofollow", "nofollow", "all", "none", " noarchive ,noimageindex ",
              "wit: noai", "wit:noindex,nofollow", "otherbot: noai", "googlebot: noimageindex", "WIT: noai",
              "unavailable_after: 25 Jun 2010 15:00:00 PST", "noai:", ":noai", "", ",,", "wit: all"]
    seen = 0
    for n in (1, 2):
        for values in itertools.product(shapes, repeat=n):
            msg = Message()
            for v in values:
                msg["X-Robots-Tag"] = v
            assert robots_optout(list(values), "wit") == is_disallowed(msg, "wit", OPTOUT_DIRECTIVES), values
            seen += robots_optout(list(values), "wit")
    assert 0 < seen < len(shapes) ** 2 + len(shapes)
    assert robots_optout([" wit : noai"], "wit") and robots_optout(["Wit: NOAI"], "WIT")
    assert not robots_optout([], "wit") and not robots_optout(["otherbot: noai"], "wit")


def test_geometry_matches_img2dataset_resizer():
    from img2dataset.resizer import Resizer

    body = _jpeg(1001, 643)
    for mode in ("keep_ratio", "center_crop", "border", "no"):
        ours = prepare(body, image_size=224, resize_mode=mode)
        jpg, w, h, ow, oh, err = Resizer(224, mode, False)(io.BytesIO(body))
        assert err is None and (ours.width, ours.height, ours.orig_width, ours.orig_height) == (w, h, ow, oh), mode
    assert target_size(1001, 643, 224, "keep_ratio") == (349, 224)


def test_retry_failed_reattempts_only_transient_failures(tmp_path, server):
    (tmp_path / "in").mkdir()
    _Handler.hits.pop("/fault/flaky", None)
    inputs = _urls(tmp_path / "in", server, ["/img/x.jpg", "/fault/flaky", "/fault/404"])
    led = str(tmp_path / "ledger")
    run_stage(DownloadStage(cfg=FAST), inputs, str(tmp_path / "dl"), ledger_dir=led, progress=False)
    hits_img = _Handler.hits["/img/x.jpg"]
    cmd = [sys.executable, "-m", "wit.cli", "download", "--urls", str(tmp_path / "in"), "--out", str(tmp_path / "dl"),
           "--ledger", led, "--retry-failed", "--set", "retries=0", "--set", "image_size=64",
           "--set", "allow_private_networks=true", "--no-progress"]
    subprocess.run(cmd, check=True, capture_output=True)
    assert _Handler.hits["/img/x.jpg"] == hits_img  # finished work is not fetched again
    retry = folders.read_parquet(str(tmp_path / "dl-retry"))
    assert retry.column("url").to_pylist() == [server + "/fault/flaky"]
    checks = ledger.reconcile(led, {"download": str(tmp_path / "dl"), "download_retry": str(tmp_path / "dl-retry")})
    assert checks["download_retry"].ledger_rows == 1 and all(c.ok for c in checks.values())


def test_descriptors_are_those_dedupe_and_the_eval_index_compute(shared_data):
    from wit.imagehash.descriptors import describe_bytes, hamming, phash64_batch, pixel_hash

    photo = sorted((shared_data / "photos" / "imagenet-sample").glob("*.JPEG"))[0]
    body = photo.read_bytes()  # served as-is: an exact web copy of an eval image
    rgba = io.BytesIO()
    Image.open(photo).convert("RGBA").resize((300, 200)).save(rgba, "PNG")
    for data in (body, rgba.getvalue()):
        original = Image.open(io.BytesIO(data))
        original.load()
        for mode in ("keep_ratio", "center_crop", "no"):
            p = prepare(data, image_size=64, resize_mode=mode)
            # pixel hash of the full-resolution decode, exactly as EvalIndex.build hashes eval images
            assert p.pixel_xxh3 == pixel_hash(original), mode
            # pHash of the resized image: within a few bits of the original's and of the stored JPEG's
            full, full_flip = phash64_batch([original], with_flip=True)
            assert hamming(p.phash, int(full[0])) <= 4 and hamming(p.phash_flip, int(full_flip[0])) <= 4, mode
            if mode != "center_crop":
                _, stored, stored_flip = describe_bytes(p.jpg)
                assert hamming(p.phash, stored) <= 4 and hamming(p.phash_flip, stored_flip) <= 4, mode


def test_centre_hash_is_the_eval_index_one_of_the_resized_image(tmp_path, shared_data):
    """Download's centre pHash is ``centre_phash_batch`` of the image it resized, the function the eval
    index applies to eval images: identical when no resize happens, within a few bits otherwise."""
    from wit.imagehash.descriptors import centre_phash_batch, hamming
    from wit.dedupe.index import EvalIndex

    photos = sorted((shared_data / "photos" / "imagenet-sample").glob("*.JPEG"))[:6]
    for p in photos:
        (tmp_path / p.name).write_bytes(p.read_bytes())
    index = EvalIndex.build({"e": str(tmp_path)}, crop_variants=False, rotation_variants=False)
    centre_rows = dict(zip(index.items[index.variants == "centre"], index.phashes[index.variants == "centre"]))
    for p in photos:
        original = Image.open(p).convert("RGB")
        same = prepare(p.read_bytes(), resize_mode="no")
        assert same.phash_centre == centre_rows[p.name], p.name  # bit for bit what the index stores
        assert same.phash_centre_flip == centre_phash_batch([original], with_flip=True)[1][0]
        for mode in ("keep_ratio", "center_crop", "border"):
            r = prepare(p.read_bytes(), image_size=256, resize_mode=mode)
            # of the resized image before any crop or border, so close to the index's row in every mode
            assert hamming(r.phash_centre, centre_rows[p.name]) <= 6, (p.name, mode)
            stored = Image.open(io.BytesIO(r.jpg))
            stored_centre, stored_flip = centre_phash_batch([stored], with_flip=True)
            if mode == "keep_ratio":  # stored JPEG = that image re-encoded at q95: at most 2 bits off
                assert hamming(r.phash_centre, stored_centre[0]) <= 2, p.name
                assert hamming(r.phash_centre_flip, stored_flip[0]) <= 2, p.name


def test_jpeg_decoded_by_simplejpeg_is_pillows_pixels_and_damage_gets_pillows_verdict():
    """download decodes undamaged RGB JPEGs with simplejpeg straight into an array: pixel for pixel
    Pillow's decode (so the pixel hash is the eval index's), EXIF orientation ignored as Pillow does; a
    truncated or corrupted file goes to Pillow, which keeps or refuses it as before."""
    import numpy as np

    from wit.download.image import decode_rgb_jpeg
    from wit.imagehash.descriptors import pixel_hash

    rng = np.random.default_rng(0)
    base = Image.fromarray(rng.integers(0, 255, (12, 20, 3), dtype=np.uint8)).resize((640, 383),
                                                                                     Image.Resampling.BICUBIC)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90": neither decoder applies it
    variants = {"4:2:0": dict(subsampling=2), "4:2:2": dict(subsampling=1), "4:4:4": dict(subsampling=0),
                "progressive": dict(progressive=True), "exif": dict(exif=exif.tobytes()),
                "q50": dict(quality=50)}
    for name, kw in variants.items():
        buf = io.BytesIO()
        base.save(buf, "JPEG", **{"quality": 90, **kw})
        body = buf.getvalue()
        pil = Image.open(io.BytesIO(body))
        arr = decode_rgb_jpeg(body, pil)
        assert arr is not None and np.array_equal(arr, np.asarray(pil.convert("RGB"))), name
        p = prepare(body, image_size=64)
        assert p.pixel_xxh3 == pixel_hash(Image.open(io.BytesIO(body))) and (p.width, p.height) == (107, 64), name
    # the resize is Pillow's reduce(k) then INTER_AREA, as before the OpenCV decode, to a grey level
    import cv2

    from wit.download.image import _resize_array

    for w, h, tw, th in [(640, 383, 107, 64), (1001, 757, 338, 256), (999, 300, 256, 77), (300, 200, 150, 100)]:
        full = np.asarray(base.resize((w, h)))
        k = min(w // tw, h // th)
        ref = cv2.resize(np.asarray(Image.fromarray(full).reduce(k)), (tw, th), interpolation=cv2.INTER_AREA)
        got = np.asarray(_resize_array(full, tw, th))
        assert got.shape == ref.shape and np.abs(got.astype(int) - ref).max() <= 1, (w, h)
    # random byte damage in the scan data: the verdict (and the pixels kept) are Pillow's, file by file
    import random

    r, verdicts = random.Random(0), set()
    for _ in range(60):
        bad = bytearray(body)
        for _ in range(r.randint(1, 20)):
            bad[r.randrange(700, len(bad) - 2)] = r.randrange(256)
        bad = bytes(bad)
        try:
            ref_img = Image.open(io.BytesIO(bad))
            ref_img.load()
            ref = pixel_hash(ref_img)
        except OSError:
            ref = None
        p = prepare(bad, image_size=64)
        assert (p.pixel_xxh3 if p.jpg else None) == ref and (p.reason == "decode_error") == (ref is None)
        verdicts.add(ref is None)
    assert verdicts == {True, False}  # both verdicts were exercised
    cut = body[: len(body) * 2 // 3]
    assert decode_rgb_jpeg(cut, Image.open(io.BytesIO(cut))) is None
    assert prepare(cut, image_size=64).reason == "decode_error"
    grey = io.BytesIO()
    base.convert("L").save(grey, "JPEG")
    assert decode_rgb_jpeg(grey.getvalue(), Image.open(grey)) is None  # Pillow's path for other modes
    assert prepare(grey.getvalue(), image_size=64).pixel_xxh3 == pixel_hash(Image.open(io.BytesIO(grey.getvalue())))
