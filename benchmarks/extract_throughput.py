"""WAT and WARC records/s per core: wit's extraction (FastWARC + selectolax) against its peers.

Inputs are the real Common Crawl samples of ../shared/data/crawl, each record re-written N times
(gzip per record, as Common Crawl ships them) so the run is long enough to time. Baselines: warcio +
json / html.parser, and for WAT also the loop cc2dataset runs (FastWARC + json + urljoin, one
process). The floor: gzip inflate of the same file alone. All run in one process on the same
files, interleaved, timed in CPU seconds (``time.process_time``); the WAT outputs must be
identical to warcio's and hold the same distinct pairs as the FastWARC loop; the WARC alt texts too.
"""

from __future__ import annotations

import argparse
import glob
import io
import json
import sys
import tempfile
import time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data" / "crawl"

from _stats import load_average, rate, ratio, rounds  # noqa: E402


def replicate(sources: list[str], out: str, times: int, types: tuple[str, ...]) -> int:
    from warcio.archiveiterator import ArchiveIterator
    from warcio.warcwriter import WARCWriter

    records = []
    for src in sources:
        with open(src, "rb") as f:
            for rec in ArchiveIterator(f):
                if rec.rec_type in types:
                    buf = io.BytesIO()
                    WARCWriter(buf, gzip=True).write_record(rec)
                    records.append(buf.getvalue())
    with open(out, "wb") as f:
        for _ in range(times):
            for r in records:
                f.write(r)
    return len(records) * times


def fastwarc_wat(path: str) -> list[tuple[str, str, str]]:
    """The cc2dataset-style loop: FastWARC metadata records, ``json.loads``, ``urljoin`` per image link."""
    from fastwarc.warc import ArchiveIterator, WarcRecordType

    out = []
    with open(path, "rb") as f:
        for rec in ArchiveIterator(f, record_types=WarcRecordType.metadata, parse_http=False):
            env = json.loads(rec.reader.read())["Envelope"]
            try:
                page = env["WARC-Header-Metadata"]["WARC-Target-URI"]
                links = env["Payload-Metadata"]["HTTP-Response-Metadata"]["HTML-Metadata"]["Links"]
            except KeyError:
                continue
            for link in links:
                if link.get("path") == "IMG@/src":
                    out.append((urljoin(page, link.get("url", "")), link.get("alt", ""), page))
    return out


def inflate(path: str) -> int:
    """Bytes of the gzip members of ``path``, decompressed and discarded (FastWARC's zlib stream)."""
    from fastwarc.stream_io import GzipReader

    stream, n = GzipReader(path, fsspec_args=False), 0
    while chunk := stream.read(1 << 20):
        n += len(chunk)
    return n


def baseline_wat(path: str) -> list[tuple[str, str, str]]:
    from warcio.archiveiterator import ArchiveIterator

    out = []
    with open(path, "rb") as f:
        for rec in ArchiveIterator(f):
            if rec.rec_type != "metadata":
                continue
            meta = json.loads(rec.content_stream().read())
            env = meta.get("Envelope", {})
            page = env.get("WARC-Header-Metadata", {}).get("WARC-Target-URI", "")
            html = env.get("Payload-Metadata", {}).get("HTTP-Response-Metadata", {}).get("HTML-Metadata", {})
            for link in html.get("Links", []):
                if link.get("path") == "IMG@/src":
                    out.append((urljoin(page, link.get("url", "")), link.get("alt", ""), page))
    return out


class _Imgs(HTMLParser):
    def __init__(self):
        super().__init__()
        self.alts = []

    def handle_starttag(self, tag, attrs):
        if tag == "img":
            self.alts.append(dict(attrs).get("alt") or "")


def baseline_warc(path: str) -> list[str]:
    """warcio + html.parser; pages decoded the same way as wit's (charset handling is not what is timed)."""
    from warcio.archiveiterator import ArchiveIterator

    from wit.candidates.warc import decode_html

    out = []
    with open(path, "rb") as f:
        for rec in ArchiveIterator(f):
            if rec.rec_type != "response" or not rec.http_headers:
                continue
            ctype = (rec.http_headers.get_header("Content-Type") or "").lower()
            if "html" not in ctype:
                continue
            charset = ctype.split("charset=")[1].split(";")[0].strip() if "charset=" in ctype else None
            p = _Imgs()
            p.feed(decode_html(rec.content_stream().read(), charset))
            out += p.alts
    return out


def main(argv=None) -> int:
    from wit.candidates.warc import warc_pairs
    from wit.candidates.wat import wat_pairs

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--times", type=int, default=100, help="copies of each real record")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        wat = f"{tmp}/bench.warc.wat.gz"
        warc = f"{tmp}/bench.warc.gz"
        n_wat = replicate([str(DATA / "cc-main-2014-35-excerpt.warc.wat")], wat, args.times * 5, ("metadata",))
        warcs = [f for f in sorted(glob.glob(str(DATA / "*.warc*"))) if not f.endswith((".wat", ".wet"))]
        n_warc = replicate(warcs, warc, max(1, args.times // 10), ("response",))
        print(f"{args.repeats} interleaved rounds, CPU seconds, medians (min-max); {load_average()}")
        for kind, path, n, fns in (
            ("WAT", wat, n_wat, {"wit": lambda: list(wat_pairs(wat, {})), "warcio": lambda: baseline_wat(wat),
                                 "fastwarc": lambda: fastwarc_wat(wat), "floor": lambda: inflate(wat)}),
            ("WARC", warc, n_warc, {"wit": lambda: list(warc_pairs(warc, {})), "warcio": lambda: baseline_warc(warc),
                                    "floor": lambda: inflate(warc)}),
        ):
            times, res = rounds(fns, args.repeats, clock=time.process_time)
            got = res["wit"]
            if kind == "WAT":
                assert got == res["warcio"], "WAT: wit and warcio+json disagree"
                assert set(got) == set(res["fastwarc"]), "WAT: wit and the FastWARC loop disagree"
                same = f"identical pairs, {len(set(got)):,} distinct, same as the FastWARC loop's"
            else:
                a = sorted(x[1].strip() for x in got if x[1].strip())
                b = sorted(x.strip() for x in res["warcio"] if x.strip())
                assert a == b, f"WARC: alt texts differ ({len(a)} vs {len(b)})"
                same = "identical alt texts"
            print(f"{kind}: {n:,} records, {len(got):,} pairs ({same}); {res['floor'] / 1e6:.0f} MB inflated")
            print(f"  wit: {rate(n, times['wit'], ' rec/s/core')}")
            for base in [k for k in fns if k not in ("wit", "floor")]:
                print(f"  {base}: {rate(n, times[base], ' rec/s/core')}; wit is {ratio(times[base], times['wit'])}")
            print(f"  floor (gzip inflate alone): {rate(n, times['floor'], ' rec/s/core')}; "
                  f"wit takes {ratio(times['wit'], times['floor'])} its time")
    return 0


if __name__ == "__main__":
    sys.exit(main())
