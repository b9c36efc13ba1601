"""WAT and WARC records/s per core: wit's extraction (FastWARC + selectolax) against warcio + json / html.parser.

Inputs are the real Common Crawl samples of ../shared/data/crawl, each record re-written N times
(gzip per record, as Common Crawl ships them) so the run is long enough to time. Both paths run on
the same files in one process; the WAT outputs must be identical, the WARC alt texts too.
"""

from __future__ import annotations

import argparse
import glob
import io
import json
import statistics
import sys
import tempfile
import time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data" / "crawl"


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


def timed(fn, repeats):
    times, res = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        res = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), res


def main(argv=None) -> int:
    from wit.candidates.warc import warc_pairs
    from wit.candidates.wat import wat_pairs

    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--times", type=int, default=100, help="copies of each real record")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        wat = f"{tmp}/bench.warc.wat.gz"
        warc = f"{tmp}/bench.warc.gz"
        n_wat = replicate([str(DATA / "cc-main-2014-35-excerpt.warc.wat")], wat, args.times * 5, ("metadata",))
        warcs = [f for f in sorted(glob.glob(str(DATA / "*.warc*"))) if not f.endswith((".wat", ".wet"))]
        n_warc = replicate(warcs, warc, max(1, args.times // 10), ("response",))
        ratios = {}
        for kind, path, n, ours, base in (
            ("WAT", wat, n_wat, lambda: list(wat_pairs(wat, {})), lambda: baseline_wat(wat)),
            ("WARC", warc, n_warc, lambda: list(warc_pairs(warc, {})), lambda: baseline_warc(warc)),
        ):
            t_ours, got = timed(ours, args.repeats)
            t_base, ref = timed(base, args.repeats)
            if kind == "WAT":
                assert got == ref, "WAT: wit and warcio+json disagree"
                same = "identical pairs"
            else:
                a = sorted(x[1].strip() for x in got if x[1].strip())
                b = sorted(x.strip() for x in ref if x.strip())
                assert a == b, f"WARC: alt texts differ ({len(a)} vs {len(b)})"
                same = "identical alt texts"
            ratios[kind] = t_base / t_ours
            print(f"{kind}: {n:,} records; wit {n / t_ours:,.0f} rec/s, baseline {n / t_base:,.0f} rec/s "
                  f"-> {ratios[kind]:.2f}x ({len(got):,} pairs, {same})")
    print("ratio: " + ", ".join(f"{k} {v:.2f}x" for k, v in ratios.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
