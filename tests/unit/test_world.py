"""The synthetic mini-web: determinism, file formats, server routes, planted eval copies, step and CLI."""

from __future__ import annotations

import bz2
import collections
import gzip
import io
import json
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pyarrow.parquet as pq
import pytest
import requests
from PIL import Image, ImageOps

from wit.world import FAULT_ROUTES, REASONS, WorldServer, generate
from wit.world.concepts import kind

NS = "{http://www.mediawiki.org/xml/export-0.10/}"
STATIC = ("img", "fault", "eval", "wiki", "pageviews")


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for d in STATIC for p in sorted((root / d).rglob("*"))
            if p.is_file()}


def _manifest_static(root: Path) -> dict:
    m = json.loads((root / "manifest.json").read_text())
    m.pop("crawl")
    return m


def test_generation_is_deterministic_and_fast(world, tmp_path):
    t0 = time.perf_counter()
    generate(tmp_path, size="tiny", seed=0)
    assert time.perf_counter() - t0 < 20
    a, b = _files(Path(world.root)), _files(tmp_path)
    assert a.keys() == b.keys() and len(a) > 500
    assert [k for k in a if a[k] != b[k]] == []
    assert _manifest_static(Path(world.root)) == _manifest_static(tmp_path)


def test_world_paths_and_manifest(world):
    assert world.base_url.startswith("http://127.0.0.1:")
    for p in world.wiki_dumps + world.wiki_index + world.pageviews + world.wat + world.warc + [world.url_list]:
        assert Path(p).is_file(), p
    assert set(world.eval_sets) == {"shapes", "objects"}
    assert 20 <= len(world.concepts) <= 40
    n_img = sum(1 for p in world.images if p.startswith("/img/"))
    assert 300 <= n_img <= 600
    for path, e in world.images.items():
        assert e["expected"] == "ok" or e["expected"] in REASONS, path
        if path.startswith("/img/"):
            assert e["format"] in ("jpeg", "png", "webp") and e["width"] >= 8 and e["height"] >= 8
    assert {e["format"] for e in world.images.values()} >= {"jpeg", "png", "webp"}
    sides = [max(e["width"], e["height"]) for p, e in world.images.items() if p.startswith("/img/")]
    assert min(sides) <= 64 and max(sides) >= 1000
    assert set(FAULT_ROUTES.values()) - {"ok"} == set(REASONS)
    assert world.expected(world.url("/fault/404/0")) == "http_404"


def _streams(data: bytes) -> list[tuple[int, bytes]]:
    """(offset, decompressed) of each bz2 stream of a multistream file."""
    out, pos = [], 0
    while pos < len(data):
        d = bz2.BZ2Decompressor()
        text = d.decompress(data[pos:])
        out.append((pos, text))
        pos = len(data) - len(d.unused_data)
    return out


def test_wikipedia_dump_is_multistream_export_010(world):
    data = Path(world.wiki_dumps[0]).read_bytes()
    streams = _streams(data)
    assert len(streams) >= 4  # header, >= 2 page blocks, footer
    starts = {off for off, _ in streams}
    index = bz2.decompress(Path(world.wiki_index[0]).read_bytes()).decode().splitlines()
    by_offset = dict(streams)
    for line in index:
        offset, page_id, title = line.split(":", 2)
        assert int(offset) in starts
        block = by_offset[int(offset)].decode()
        assert f"<id>{page_id}</id>" in block
    root = ET.fromstring(b"".join(t for _, t in streams))
    assert root.tag == f"{NS}mediawiki" and root.get("version") == "0.10"
    assert root.find(f"{NS}siteinfo/{NS}namespaces") is not None
    pages = root.findall(f"{NS}page")
    assert len(pages) == len(index) > 200
    ns = collections.Counter(p.findtext(f"{NS}ns") for p in pages)
    assert ns["0"] > 200 and len(ns) >= 4
    redirects = [p for p in pages if p.find(f"{NS}redirect") is not None]
    assert redirects and all(p.find(f"{NS}redirect").get("title") for p in redirects)
    texts = "".join(p.findtext(f"{NS}revision/{NS}text") for p in pages)
    for markup in ("{{", "{|", "<ref", "[[File:", "[[Category:", "'''", "== ", "|"):
        assert markup in texts, markup
    titles = {p.findtext(f"{NS}title") for p in pages}
    assert "Red circle" in titles and "House" in titles
    assert texts.count(" red circle ") >= 3


def test_pageviews_have_the_real_format(world):
    lines = []
    for f in world.pageviews:
        text = gzip.decompress(Path(f).read_bytes()).decode()
        lines += [(Path(f).name, line.split(" ")) for line in text.splitlines()]
    assert len(world.pageviews) >= 3
    assert all(len(fields) == 4 and fields[2].isdigit() and fields[3] == "0" for _, fields in lines)
    domains = {fields[0] for _, fields in lines}
    assert "en" in domains and len(domains) >= 3
    assert any(":" in fields[1] for _, fields in lines)
    views = [int(fields[2]) for _, fields in lines if fields[0] == "en"]
    assert min(views) < 50 <= max(views)
    totals: dict[str, int] = collections.Counter()
    for _, (d, title, v, _b) in lines:
        if d == "en" and ":" not in title and int(v) >= 50:
            totals[title.replace("_", " ")] += int(v)
    popular = sorted(t for t, v in totals.items() if v >= 70 and t != "Main Page")
    assert popular == world.manifest["pageviews"]["popular_titles"] and len(popular) >= 10


def _wat_pairs(world) -> tuple[list[tuple[str, str, str]], int]:
    from fastwarc.warc import ArchiveIterator, WarcRecordType

    pairs, broken = [], 0
    for f in world.wat:
        with open(f, "rb") as fh:
            for rec in ArchiveIterator(fh, record_types=WarcRecordType.metadata):
                page = rec.headers["WARC-Target-URI"]
                try:
                    meta = json.loads(rec.reader.read())
                except json.JSONDecodeError:
                    broken += 1
                    continue
                resp = meta["Envelope"]["Payload-Metadata"].get("HTTP-Response-Metadata")
                if not resp:
                    continue
                for link in resp["HTML-Metadata"]["Links"]:
                    if link["path"] == "IMG@/src":
                        pairs.append((urljoin(page, link["url"]), link.get("alt", ""), page))
    return pairs, broken


def test_wat_warc_and_url_list_carry_the_same_pairs(world):
    from fastwarc.warc import ArchiveIterator, WarcRecordType
    from selectolax.lexbor import LexborHTMLParser as HTMLParser

    wat, broken = _wat_pairs(world)
    assert broken == 1
    warc = []
    for f in world.warc:
        with open(f, "rb") as fh:
            for rec in ArchiveIterator(fh, record_types=WarcRecordType.response, parse_http=True):
                page = rec.headers["WARC-Target-URI"]
                for img in HTMLParser(rec.reader.read().decode()).css("img"):
                    warc.append((urljoin(page, img.attributes["src"]), img.attributes.get("alt") or "", page))
    t = pq.read_table(world.url_list)
    assert t.column_names == ["url", "text", "page_url"]
    listed = list(zip(*(t.column(c).to_pylist() for c in t.column_names)))
    assert sorted(wat) == sorted(warc) == sorted(listed) and len(wat) >= 400
    served = {urlsplit(u).path for u, _, _ in wat}
    in_crawl = {p for p, e in world.images.items() if e["in_crawl"]}
    assert served == in_crawl  # every fault route and planted copy is reachable from the crawl
    raw_src = [img for f in world.warc for img in gzip.decompress(Path(f).read_bytes()).decode().split('src="')[1:]]
    assert any(s.startswith("http") for s in raw_src) and any(s.startswith("..") for s in raw_src)


def test_captions_have_head_tail_noise_and_duplicates(world):
    counts = world.manifest["concept_counts"]
    assert max(counts.values()) >= 8 * min(counts.values())
    wat, _ = _wat_pairs(world)
    alts = [a for _, a, _ in wat]
    assert "" in alts
    assert any(not a.isascii() for a in alts)
    assert any(a and not any(w in a.lower() for c in world.concepts for w in c.split()) for a in alts)
    assert any(n > 1 for n in collections.Counter((u, a) for u, a, _ in wat).values())
    named = [a for a in alts if any(c in a.lower() for c in world.concepts)]
    assert len(named) > 0.6 * len(alts)


def _outcome(url: str) -> str:
    """What a careful downloader concludes (the contract the download stage implements)."""
    s = requests.Session()
    s.max_redirects = 10
    try:
        r = s.get(url, timeout=2.0)
    except requests.exceptions.ReadTimeout:
        return "timeout"
    except requests.exceptions.TooManyRedirects:
        return "too_many_redirects"
    except requests.exceptions.ChunkedEncodingError:
        return "truncated"
    except requests.exceptions.ConnectionError:
        return "connection_error"
    if r.status_code != 200:
        return f"http_{r.status_code}"
    if r.headers.get("X-Robots-Tag") in ("noai", "noimageai"):
        return "robots_optout"
    if r.headers["Content-Type"].startswith("text/html"):
        return "not_an_image"
    if len(r.content) > 2_000_000:
        return "too_large"
    try:
        with Image.open(io.BytesIO(r.content)) as im:
            if im.width * im.height > 50_000_000:
                return "decompression_bomb"
            im.load()
    except Image.DecompressionBombError:
        return "decompression_bomb"
    except Exception:  # noqa: BLE001 - any decoder failure is the outcome under test
        return "decode_error"
    return "ok"


def test_every_served_path_behaves_as_the_manifest_says(world):
    faults = {p: e for p, e in world.images.items() if p.startswith("/fault/")}
    assert {e["route"] for e in faults.values()} == set(FAULT_ROUTES)
    got = {p: _outcome(world.url(p)) for p in faults}
    assert got == {p: e["expected"] for p, e in faults.items()}
    hop = requests.get(world.url("/fault/hop/0"), timeout=2)
    assert len(hop.history) == 3 and hop.url.endswith(world.images["/fault/hop/0"]["redirect_to"])
    assert requests.get(world.url("/fault/large/0"), timeout=2).headers["Content-Type"] == "image/png"
    for path, e in world.images.items():
        if path.startswith("/img/"):
            r = requests.get(world.url(path), timeout=2)
            with Image.open(io.BytesIO(r.content)) as im:
                assert (im.format.lower(), im.width, im.height) == (e["format"], e["width"], e["height"]), path
    page = requests.get(world.url("/page/00000.html"), timeout=2)
    assert page.status_code == 200 and "<img" in page.text
    assert requests.get(world.url("/img/nope.jpg"), timeout=2).status_code == 404
    assert requests.get(world.url("/img/../manifest.json"), timeout=2).status_code == 404


def test_stop_does_not_wait_for_a_slow_request(world):
    server = WorldServer(world.root, slow_delay=30).start()
    outcome = []
    t = threading.Thread(target=lambda: outcome.append(_outcome(server.base_url + "/fault/slow/0")))
    t.start()
    time.sleep(0.2)
    t0 = time.perf_counter()
    server.stop()
    assert time.perf_counter() - t0 < 3
    t.join(5)
    assert outcome  # the client got an answer (timeout or closed), the handler did not linger
    with WorldServer(world.root, slow_delay=0.05) as fast:
        assert _outcome(fast.base_url + "/fault/slow/1") == "ok"


def _gray(img: Image.Image):
    import numpy as np

    a = np.asarray(img.convert("L").resize((48, 48), Image.BILINEAR), dtype=float)
    return (a - a.mean()) / (a.std() + 1e-6)  # brightness/contrast jitter is (nearly) affine


def test_planted_copies_are_perturbed_copies_of_eval_images(world):
    planted = {p: e["planted"] for p, e in world.images.items() if e.get("planted")}
    n_eval = sum(e["items"] for e in world.manifest["eval"].values())
    assert 0.07 * n_eval <= len(planted) <= 0.13 * n_eval
    assert {pl["perturbation"] for pl in planted.values()} == {"resize", "jpeg", "crop", "jitter", "flip"}
    for path, pl in planted.items():
        src_path = Path(world.eval_sets[pl["eval_set"]]) / pl["eval_item"]
        copy_path = Path(world.root) / path.lstrip("/")
        assert src_path.read_bytes() != copy_path.read_bytes()
        src, copy = Image.open(src_path), Image.open(copy_path)
        if pl["perturbation"] == "flip":
            copy = ImageOps.mirror(copy)
        d_src = abs(_gray(copy) - _gray(src)).mean()
        cls_dir = src_path.parent
        others = [abs(_gray(copy) - _gray(Image.open(o))).mean() for o in cls_dir.iterdir() if o != src_path]
        assert d_src < min(others), (path, pl, d_src, min(others))
        assert world.images[path]["concepts"] == [src_path.parent.name]
        assert world.images[path]["captions"] and src_path.parent.name in world.images[path]["captions"][0].lower()
    # ImageFolder layout: <set>/<class>/<file>.jpg with classes = concepts
    for name, d in world.eval_sets.items():
        classes = sorted(p.name for p in Path(d).iterdir())
        assert classes == sorted(world.manifest["eval"][name]["classes"])
        assert set(classes) <= set(world.concepts)
    assert {kind(c) for c in world.manifest["eval"]["objects"]["classes"]} == {"object"}


def test_step_and_cli(tmp_path, capsys):
    from wit.cli import main
    from wit.config import RunSpec, WorldConfig
    from wit.pipeline import RunContext
    from wit.world.step import run_step

    from wit.world import World

    ctx = RunContext(RunSpec(world=WorldConfig(size="tiny", seed=3)), str(tmp_path / "run"))
    counts = run_step(ctx.for_step("world"))
    w = World.load(ctx.folder("world"))
    assert counts["images"] > 300 and counts["pairs"] > 300
    assert requests.get(w.url("/fault/500/0"), timeout=2).status_code == 500
    # The world fills the spec's empty inputs, so no later step needs to know it exists.
    assert ctx.spec.candidates.inputs == w.wat and ctx.spec.dedupe.eval == w.eval_sets == ctx.spec.train.eval
    assert ctx.spec.queries.wikipedia == w.wiki_dumps
    ctx.close()
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(w.url("/img/000000.jpg"), timeout=1)

    assert main(["world", "--out", str(tmp_path / "cli"), "--seed", "1"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["planted"] > 0 and Path(out["url_list"]).is_file()
    # another seed, another world
    item = "eval/shapes/red circle/0000.jpg"
    assert (tmp_path / "cli" / item).read_bytes() != (Path(w.root) / item).read_bytes()
