"""The real web is hostile: every URL ends with one ledger row and its reason, within its deadline,
never reaching a private address; damaged files keep what came before the damage; tar keys and
run paths cannot escape or break anything."""

from __future__ import annotations

import io
import re
import subprocess
import sys
import tarfile
import threading
import time

import pyarrow as pa
import pytest
from PIL import Image

from tests.hostile_web import HostileServer
from wit import schemas
from wit.config import DownloadConfig
from wit.download.fetch import Fetcher
from wit.download.image import PixelBudget
from wit.download.stage import DownloadStage
from wit.io import folders, ledger
from wit.records import candidate_uid
from wit.runners import run_stage

OPEN = dict(allow_private_networks=True, retries=0, backoff=0.01, image_size=32, max_bytes=2_000_000)


@pytest.fixture(scope="module")
def web():
    srv = HostileServer("127.0.0.1", huge=(3000, 3000)).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def other():
    """A second server on 127.0.0.2: a 'private' host the redirect tests must never reach."""
    try:
        srv = HostileServer("127.0.0.2").start()
    except OSError:
        pytest.skip("cannot bind 127.0.0.2")
    yield srv
    srv.stop()


def _part(folder, urls: list[str]) -> tuple[list[str], dict[str, str]]:
    """One balanced-like input part; returns its path and uid -> url."""
    texts = [f"photo {i}" for i in range(len(urls))]
    uids = [candidate_uid(u, t) for u, t in zip(urls, texts)]
    t = pa.table({"uid": uids, "url": urls, "text": texts, "page_url": [""] * len(urls),
                  "source": ["test"] * len(urls), "query_ids": [[1]] * len(urls)}, schema=schemas.MATCHED)
    folder.mkdir(parents=True, exist_ok=True)
    path = str(folder / "part-00000.parquet")
    folders.write_parquet(path, t)
    return [path], dict(zip(uids, urls))


def _download(tmp_path, urls: list[str], **cfg) -> tuple[dict[str, str], float]:
    """Download ``urls`` as one part; the reason per URL ("" when kept) and the wall time. The ledger
    must hold exactly one row per input row and reconcile."""
    inputs, by_uid = _part(tmp_path / "in", urls)
    led, out = str(tmp_path / "ledger"), str(tmp_path / "dl")
    t0 = time.monotonic()
    run_stage(DownloadStage(cfg=DownloadConfig(**{**OPEN, **cfg})), inputs, out, ledger_dir=led, progress=False)
    wall = time.monotonic() - t0
    rows = folders.read_parquet(led).to_pylist()
    assert len(rows) == len(urls) and {r["uid"] for r in rows} == set(by_uid)
    assert all(c.ok for c in ledger.reconcile(led, {"download": out}).values())
    return {by_uid[r["uid"]]: r["reason"] for r in rows}, wall


MALFORMED = [
    "http://" + "a" * 64 + ".example.com/x.jpg",  # label over 63 characters
    "http://a..b.example.com/x.jpg",  # empty label
    "http://.example.com/x.jpg",
    "http://127.0.0.1:99999/img/x.jpg",  # bad port
    "http://127.0.0.1:abc/img/x.jpg",
    "http://[::1/img/x.jpg",  # unbalanced bracket
    "http://exa mple.com/x.jpg",  # space in host
    "http://exa\x00mple.com/x.jpg",  # NUL in host
    "http://example.com/a\x01b.jpg",  # control character
    "http://example.com/a\x7fb.jpg",
    "http://exa\x1bmple.com/x.jpg",
    "ftp://example.com/x.jpg",
    "http://:80/x.jpg",
    "http://[1.2.3.4]/x.jpg",
    "http://256.1.1.1/x.jpg",
    "http://exa%20mple.com/x.jpg",
    "",
    "\ufffd not a url",
]


def test_every_url_ends_in_one_ledger_row_with_its_reason(tmp_path, web):
    b = web.base
    want = {u: "bad_url" for u in MALFORMED}
    web.redirects.update({"bad": "http://exa mple.com/x.jpg", "utf8": "/uni/ü.jpg".encode().decode("latin-1"),
                          "loop": "/redirect/loop"})
    want.update({
        b + "/uni/café.jpg": "", b + "/sp/a b.jpg?q=é d": "", b + "/img/ok.jpg#frag": "",
        b + "/img/wrap\n\tped.jpg": "",
        "HTTP://user:pw@" + b[len("http://"):] + "/img/userinfo.jpg": "",
        b + "/garbage": "decode_error", b + "/empty": "decode_error", b + "/html": "not_an_image",
        b + "/reset": "connection_error", b + "/nope": "http_404", b + "/redirect/bad": "bad_url",
        b + "/redirect/utf8": "", b + "/redirect/loop": "too_many_redirects",
    })
    before = dict(web.hits)
    got, _ = _download(tmp_path, list(want))
    assert got == want
    new = {p: n - before.get(p, 0) for p, n in web.hits.items() if n > before.get(p, 0)}
    # Browsers' encoding on the wire: UTF-8 percent-escapes, no fragment, no credentials.
    assert new["/uni/caf%C3%A9.jpg"] == 1 and new["/sp/a%20b.jpg?q=%C3%A9%20d"] == 1
    assert new["/img/ok.jpg"] == 1 and new["/img/userinfo.jpg"] == 1 and new["/uni/%C3%BC.jpg"] == 1
    assert new["/img/wrapped.jpg"] == 1  # tabs and newlines inside a URL are dropped, as browsers do
    # No malformed URL produced a request (those on 127.0.0.1 with a bad port included).
    assert not [p for p in new if "x.jpg" in p]


@pytest.mark.parametrize("route", ["/drip", "/drip-close", "/slow-headers"])
def test_timeout_bounds_the_whole_attempt(web, route):
    f = Fetcher(timeout=1.0, retries=0, allow_private_networks=True)
    t0 = time.monotonic()
    res = f.fetch(web.base + route)
    elapsed = time.monotonic() - t0
    assert res.reason == "timeout" and res.body is None
    assert elapsed <= 2.0, f"{route} held the attempt {elapsed:.1f} s with timeout=1"


def test_dripping_servers_cannot_hold_a_part(tmp_path, web):
    urls = [web.base + r for r in ("/drip", "/drip-close", "/slow-headers")] + [web.base + "/img/fine.jpg"]
    got, wall = _download(tmp_path, urls, timeout=1.0, retries=1, backoff=0.1)
    assert got == {**{u: "timeout" for u in urls[:3]}, urls[3]: ""}
    # two attempts of 1 s each plus 0.1 s backoff, in parallel threads: a few seconds, not minutes
    assert wall <= 2 * 1.0 + 0.1 + 1.5, wall


def test_private_addresses_are_refused_before_connecting(tmp_path, web):
    port = web.port
    urls = [f"http://{h}:{port}/img/p.jpg" for h in (
        "127.0.0.1", "localhost", "2130706433", "0x7f000001", "0177.0.0.1", "127.1", "user:pw@127.0.0.1",
        "0.0.0.0", "[::1]", "[::ffff:127.0.0.1]", "[::ffff:7f00:1]", "[::]", "10.0.0.1", "192.168.1.1",
        "172.16.0.1", "169.254.169.254", "100.64.0.1", "224.0.0.1", "[fe80::1]", "[fc00::1]")]
    before = web.total
    t0 = time.monotonic()
    got, _ = _download(tmp_path, urls, allow_private_networks=False, timeout=5.0)
    assert got == {u: "private_address" for u in urls}
    assert web.total == before  # nothing reached the server
    assert time.monotonic() - t0 < 5.0  # refused, not timed out


def test_every_redirect_hop_is_checked(tmp_path, web, other):
    web.redirects.update({
        "to-other": f"{other.base}/img/secret.jpg",
        "to-other-int": f"http://2130706434:{other.port}/img/secret.jpg",  # 127.0.0.2 as one integer
        "to-metadata": "http://169.254.169.254/latest/meta-data/",
        "to-v6": f"http://[::ffff:127.0.0.2]:{other.port}/img/secret.jpg",
        "to-fine": "/img/after-redirect.jpg",
    })
    urls = [web.base + "/redirect/" + k for k in ("to-other", "to-other-int", "to-metadata", "to-v6",
                                                    "to-fine")]
    got, _ = _download(tmp_path, urls, allow_private_networks=False, allowed_networks=["127.0.0.1/32"])
    assert got == {**{u: "private_address" for u in urls[:4]}, urls[4]: ""}
    assert other.total == 0
    assert all(web.hits[u[len(web.base):]] >= 1 for u in urls)  # the first hop was fetched (exempt)


def test_huge_images_decode_within_the_pixel_budget(tmp_path, web):
    urls = [f"{web.base}/huge/{i}.png" for i in range(4)]
    inputs, _ = _part(tmp_path / "in", urls)
    out = str(tmp_path / "dl")
    run_stage(DownloadStage(cfg=DownloadConfig(**OPEN, decode_pixel_budget=10_000_000)), inputs, out,
              ledger_dir=str(tmp_path / "ledger"), progress=False)
    t = folders.read_parquet(out).to_pylist()
    assert len(t) == 4 and all((r["orig_width"], r["orig_height"], r["width"]) == (3000, 3000, 32) for r in t)


def test_pixel_budget_bounds_pixels_in_flight():
    budget = PixelBudget(100)
    state = {"now": 0, "peak": 0}
    lock = threading.Lock()

    def work(n: int) -> None:
        with budget.hold(n):
            with lock:
                state["now"] += min(n, 100)
                state["peak"] = max(state["peak"], state["now"])
            time.sleep(0.02)
            with lock:
                state["now"] -= min(n, 100)

    threads = [threading.Thread(target=work, args=(n,)) for n in [60, 60, 30, 30, 150, 10, 90] * 3]
    for th in threads:
        th.start()
    for th in threads:
        th.join(10)
    assert state["peak"] <= 100 and state["now"] == 0 and budget._used == 0


# --- damaged input files -------------------------------------------------------------------------


def _wat(n: int, gz: bool) -> tuple[bytes, list[int]]:
    import json

    from warcio.warcwriter import WARCWriter

    buf = io.BytesIO()
    w = WARCWriter(buf, gzip=gz)
    offsets = []
    for i in range(n):
        offsets.append(buf.tell())
        env = {"WARC-Header-Metadata": {"WARC-Target-URI": f"http://a.test/p{i}"},
               "Payload-Metadata": {"HTTP-Response-Metadata": {"HTML-Metadata": {
                   "Links": [{"path": "IMG@/src", "url": f"x{i}.jpg", "alt": f"alt {i}"}]}}}}
        rec = w.create_warc_record(f"http://a.test/p{i}", "metadata",
                                   payload=io.BytesIO(json.dumps({"Envelope": env}).encode()),
                                   warc_content_type="application/json")
        w.write_record(rec)
    offsets.append(buf.tell())
    return buf.getvalue(), offsets


def _candidates(path, fmt: str = "wat", **kw):
    from wit.candidates.stage import CandidatesStage

    st = CandidatesStage(format=fmt, **kw)
    st.begin_task(str(path), 0)
    kept, errors = [], {}
    for b in st.read_task(str(path)):
        r = st.process_batch(b)
        kept += r.kept.column("text").to_pylist()
        for k, v in r.errors.items():
            errors[k] = errors.get(k, 0) + v
    return kept, errors


def _damage(kind: str, data: bytes, off: list[int]) -> bytes:
    if kind == "cut":  # the file ends inside record 4
        return data[: off[4] + 30]
    if kind == "flip":  # bytes of record 4 overwritten
        return data[: off[4] + 20] + bytes(b ^ 0x55 for b in data[off[4] + 20: off[4] + 60]) + data[off[4] + 60:]
    if kind == "garbage":  # junk inserted between records 3 and 4
        return data[: off[4]] + b"GARBAGE\x00\xff" * 50 + data[off[4]:]
    return data[: off[4]] + b"\x00" * (off[5] - off[4]) + data[off[5]:]  # record 4 zeroed


@pytest.mark.parametrize("gz", [True, False], ids=["gz", "plain"])
@pytest.mark.parametrize("kind", ["cut", "flip", "garbage", "zeroed"])
def test_damaged_wat_keeps_records_around_the_damage(tmp_path, gz, kind):
    data, off = _wat(10, gz)
    path = tmp_path / ("x.warc.wat.gz" if gz else "x.warc.wat")
    path.write_bytes(_damage(kind, data, off))
    kept, errors = _candidates(path)
    before = [f"alt {i}" for i in range(4)]
    assert sorted(kept)[:4] == before  # every record before the damage
    if kind == "cut":
        assert sorted(kept) == before and errors == {"truncated_gz" if gz else "truncated_record": 1}
    else:
        after = [f"alt {i}" for i in range(5, 10)]
        assert set(after) <= set(kept) and errors == {"corrupt_record": 1}, (kept, errors)


@pytest.mark.parametrize("gz", [True, False], ids=["gz", "plain"])
def test_warc_cut_inside_the_last_http_response(tmp_path, gz):
    from warcio.statusandheaders import StatusAndHeaders
    from warcio.warcwriter import WARCWriter

    buf = io.BytesIO()
    w = WARCWriter(buf, gzip=gz)
    for i in range(3):
        html = f'<html><body><img src="x{i}.jpg" alt="page {i}">{"pad " * 300}</body></html>'.encode()
        hd = StatusAndHeaders("200 OK", [("Content-Type", "text/html; charset=utf-8")], protocol="HTTP/1.1")
        w.write_record(w.create_warc_record(f"http://a.test/r{i}", "response", payload=io.BytesIO(html),
                                            http_headers=hd))
    path = tmp_path / ("x.warc.gz" if gz else "x.warc")
    path.write_bytes(buf.getvalue()[:-300])
    kept, errors = _candidates(path, "warc")
    assert sorted(kept) == ["page 0", "page 1"] and errors == {"truncated_gz" if gz else "truncated_record": 1}


def test_csv_with_a_latin1_line_and_a_bad_row_keeps_the_rest(tmp_path):
    path = tmp_path / "list.csv"
    path.write_bytes(b"url,text\nhttp://a.test/1.jpg,first\nhttp://a.test/2.jpg,caf\xe9 au lait\n"
                     b"http://a.test/3.jpg,third,extra field\nhttp://a.test/4.jpg,fourth\n")
    kept, errors = _candidates(path, "csv")
    assert kept == ["first", "fourth"] and errors == {"invalid_utf8_row": 1, "bad_csv_row": 1}


def test_a_list_without_the_column_is_one_line_naming_file_and_column(tmp_path):
    path = tmp_path / "list.csv"
    path.write_bytes(b"url,caption\nhttp://a.test/1.jpg,first\n")
    with pytest.raises(ValueError, match=r"list\.csv: no column 'text' \(columns: url, caption\)"):
        _candidates(path, "csv")
    pq_path = tmp_path / "list.parquet"
    folders.write_parquet(str(pq_path), pa.table({"url": ["http://a.test/1.jpg"]}))
    with pytest.raises(ValueError, match=r"list\.parquet: no column 'text'"):
        _candidates(pq_path, "parquet")


def test_dedupe_on_candidate_parquet_fails_naming_file_and_column(tmp_path):
    inputs, _ = _part(tmp_path / "cands", ["http://a.test/1.jpg"])
    cmd = [sys.executable, "-m", "wit.cli", "dedupe", "--input", inputs[0], "--out", str(tmp_path / "dd"),
           "--no-progress"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    last = r.stderr.strip().splitlines()[-1]
    assert r.returncode == 2 and re.fullmatch(r"wit: error: .*part-00000\.parquet: no column 'jpg': .*", last), \
        r.stderr[-2000:]


# --- tar keys and paths --------------------------------------------------------------------------

HOSTILE_UIDS = ["../../../../tmp/x", "/etc/cron.d/x", "nul\x00byte", "a" * 16 + "one", "a" * 16 + "two",
                "with.dots.jpg", "ü-unicode", "", "a" * 16 + "one"]


def _final(folder, uids: list[str]) -> list[str]:
    recs = []
    for i, uid in enumerate(uids):
        b = io.BytesIO()
        Image.new("RGB", (40, 30), (i * 20, 9, 9)).save(b, "JPEG")
        recs.append({"uid": uid, "url": f"http://x/{i}.jpg", "text": f"caption {i}", "page_url": "", "source": "t",
                     "query_ids": [i % 2], "key": uid[:16], "jpg": b.getvalue(), "width": 40, "height": 30,
                     "orig_width": 40, "orig_height": 30, "sha256": "s", "phash": i, "pixel_xxh3": "p"})
    path = str(folder / "part-00000.parquet")
    folders.write_parquet(path, pa.Table.from_pylist(recs, schema=schemas.DEDUPED))
    return [path]


def test_tar_keys_are_safe_unique_and_stable(tmp_path):
    import webdataset as wds

    from wit.shard.job import write_shards

    inputs = _final(tmp_path / "final", HOSTILE_UIDS)
    outs = []
    for run in ("a", "b"):
        out = tmp_path / run / "shards"
        write_shards(inputs, str(out), 100, ledger_dir=str(tmp_path / run / "ledger"), progress=False)
        outs.append(out)
    tar_a, tar_b = (o / "00000.tar" for o in outs)
    assert tar_a.read_bytes() == tar_b.read_bytes()  # stable across reruns
    with tarfile.open(tar_a) as tar:
        names = tar.getnames()
        target = tmp_path / "extract"
        tar.extractall(target, filter="data")
    keys = [n.rsplit(".", 1)[0] for n in names[::3]]
    assert all(re.fullmatch(r"[A-Za-z0-9_-]+", k) for k in keys) and len(set(keys)) == len(HOSTILE_UIDS)
    assert sorted(p.name for p in target.iterdir()) == sorted(names)  # nothing outside the folder
    samples = list(wds.WebDataset(str(tar_a), shardshuffle=False).to_tuple("__key__", "json"))
    import json

    assert [json.loads(j)["uid"] for _, j in samples] == HOSTILE_UIDS  # the uid itself, in the sidecar
    parquet = folders.read_parquet(str(outs[0] / "00000.parquet"))
    assert parquet.column("uid").to_pylist() == HOSTILE_UIDS and parquet.column("key").to_pylist() == keys


def test_run_dir_with_quote_space_and_umlaut_works_for_stats_and_ledger_check(tmp_path):
    from wit.shard.job import write_shards

    run = tmp_path / "o'k dir ü"
    inputs = _final(tmp_path / "final", [f"{i:032x}" for i in range(7)])
    rep = write_shards(inputs, str(run / "shards"), 3, ledger_dir=str(run / "ledger"), progress=False)
    assert rep["stats"]["samples"] == 7 and rep["stats"]["shards"] == 3 and rep["stats"]["tar_bytes"] > 0
    r = subprocess.run([sys.executable, "-m", "wit.cli", "ledger", "check", str(run)], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert re.search(r"shard\s+in=7\s+kept=7", r.stdout)
