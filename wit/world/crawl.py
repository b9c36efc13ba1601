"""``write_crawl(root, base_url)``: the pages and Common Crawl-style files for a served world.

Writes the HTML pages (page/), WAT files (per-record gzip, WARC/1.0 ``metadata`` records with
the real WAT JSON: Envelope -> Payload-Metadata -> HTTP-Response-Metadata -> HTML-Metadata ->
Links), WARC files (``request`` + ``response`` records holding the pages) and a URL+text Parquet
list. All three carry the same (image URL, alt text, page URL) pairs. One WAT record holds
broken JSON on purpose.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import logging
import random
import uuid
from html import escape
from pathlib import Path
from urllib.parse import urljoin

import pyarrow as pa
import pyarrow.parquet as pq

from wit.world.world import MANIFEST, World

log = logging.getLogger(__name__)

FILES_PER_FORMAT = {"tiny": 2, "small": 4}


def _record(headers: list[tuple[str, str]], payload: bytes) -> bytes:
    head = "WARC/1.0\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers) + f"Content-Length: {len(payload)}\r\n\r\n"
    return gzip.compress(head.encode() + payload + b"\r\n\r\n", mtime=0)


def _digest(data: bytes) -> str:
    return "sha1:" + base64.b32encode(hashlib.sha1(data).digest()).decode()


def _src(link: dict, base_url: str) -> str:
    if link["src"] == "absolute":
        return base_url + link["path"]
    if link["src"] == "root":
        return link["path"]
    return ".." + link["path"]  # pages live under /page/


def page_html(title: str, links: list[dict], base_url: str) -> str:
    imgs = "\n".join(f'  <figure><img src="{escape(_src(link, base_url))}" alt="{escape(link["alt"])}"></figure>'
                     for link in links)
    return ("<!doctype html>\n<html lang=\"en\">\n<head><meta charset=\"utf-8\"><title>" + escape(title)
            + "</title></head>\n<body>\n<h1>" + escape(title) + "</h1>\n<p>Pictures from the mini-web.</p>\n"
            + imgs + '\n<p><a href="/page/00000.html">first gallery</a></p>\n</body>\n</html>\n')


class _Ids:
    def __init__(self, rng: random.Random):
        self.rng = rng

    def new(self) -> str:
        return f"<urn:uuid:{uuid.UUID(int=self.rng.getrandbits(128), version=4)}>"

    def date(self) -> str:
        r = self.rng
        return f"2024-08-{r.randint(1, 28):02d}T{r.randint(0, 23):02d}:{r.randint(0, 59):02d}:{r.randint(0, 59):02d}Z"


def _warcinfo(name: str, ids: _Ids, date: str) -> bytes:
    body = ("software: wit.world\r\nformat: WARC File Format 1.0\r\nisPartOf: WIT-MINIWEB\r\n"
            "description: synthetic crawl of the wit mini-web\r\n").encode()
    return _record([("WARC-Type", "warcinfo"), ("WARC-Date", date), ("WARC-Filename", name),
                    ("WARC-Record-ID", ids.new()), ("Content-Type", "application/warc-fields")], body)


def _http_response(html: str) -> tuple[bytes, bytes, dict]:
    body = html.encode()
    headers = {"Content-Type": "text/html; charset=utf-8", "Content-Length": str(len(body)), "Server": "wit-world"}
    head = ("HTTP/1.1 200 OK\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n").encode()
    return head, body, headers


def _wat_payload(page_url: str, title: str, links: list[dict], base_url: str, warc_name: str, record_id: str,
                 date: str, html: str) -> dict:
    head, body, headers = _http_response(html)
    html_links = []
    for link in links:
        item = {"path": "IMG@/src", "url": _src(link, base_url)}
        if link["alt"]:  # like CC's extractor, an empty attribute is left out
            item["alt"] = link["alt"]
        html_links.append(item)
    html_links.append({"path": "A@/href", "url": "/page/00000.html", "text": "first gallery"})
    return {
        "Container": {"Filename": warc_name, "Compressed": True, "Offset": "0",
                      "Gzip-Metadata": {"Inflated-Length": str(len(head) + len(body))}},
        "Envelope": {
            "Format": "WARC",
            "WARC-Header-Length": "400",
            "Block-Digest": _digest(head + body),
            "Actual-Content-Length": str(len(head) + len(body)),
            "WARC-Header-Metadata": {
                "WARC-Type": "response", "WARC-Date": date, "WARC-Record-ID": record_id,
                "WARC-Target-URI": page_url, "WARC-IP-Address": "127.0.0.1",
                "Content-Type": "application/http; msgtype=response", "Content-Length": str(len(head) + len(body)),
            },
            "Payload-Metadata": {
                "Actual-Content-Type": "application/http; msgtype=response",
                "Trailing-Slop-Length": "4",
                "HTTP-Response-Metadata": {
                    "Response-Message": {"Version": "HTTP/1.1", "Status": "200", "Reason": "OK"},
                    "Headers": headers,
                    "Headers-Length": str(len(head)),
                    "Entity-Length": str(len(body)),
                    "Entity-Trailing-Slop-Bytes": "0",
                    "Entity-Digest": _digest(body),
                    "HTML-Metadata": {
                        "Head": {"Title": title, "Metas": [{"name": "viewport", "content": "width=device-width"}]},
                        "Links": html_links,
                    },
                },
            },
        },
    }


def write_crawl(root: str | Path, base_url: str, seed: int = 0) -> World:
    """Write pages, WAT, WARC and the URL list for a world served at ``base_url``; return the World."""
    root = Path(root).resolve()
    base_url = base_url.rstrip("/")
    manifest = json.loads((root / MANIFEST).read_text())
    rng = random.Random(f"crawl/{manifest['size']}/{manifest['seed']}/{seed}")
    ids = _Ids(rng)
    pages = manifest["pages"]
    names = sorted(pages)
    n_files = FILES_PER_FORMAT.get(manifest["size"], 2)
    groups = [names[i::n_files] for i in range(n_files)]
    (root / "page").mkdir(exist_ok=True)
    (root / "crawl").mkdir(exist_ok=True)
    html_of = {}
    for name in names:
        html_of[name] = page_html(pages[name]["title"], pages[name]["links"], base_url)
        (root / name.lstrip("/")).write_text(html_of[name])

    wat_files, warc_files, broken = [], [], []
    for k, group in enumerate(groups):
        warc_name = f"WIT-MINIWEB-{k:05d}.warc.gz"
        warc_out, wat_out = [_warcinfo(warc_name, ids, ids.date())], [_warcinfo(warc_name + ".wat", ids, ids.date())]
        for name in group:
            page_url = base_url + name
            date, req_id, resp_id = ids.date(), ids.new(), ids.new()
            request = f"GET {name} HTTP/1.1\r\nHost: {base_url.split('://', 1)[1]}\r\nUser-Agent: wit-crawler\r\n\r\n"
            warc_out.append(_record([("WARC-Type", "request"), ("WARC-Date", date), ("WARC-Record-ID", req_id),
                                     ("WARC-Target-URI", page_url), ("WARC-Concurrent-To", resp_id),
                                     ("Content-Type", "application/http; msgtype=request")], request.encode()))
            head, body, _ = _http_response(html_of[name])
            warc_out.append(_record([("WARC-Type", "response"), ("WARC-Date", date), ("WARC-Record-ID", resp_id),
                                     ("WARC-Target-URI", page_url), ("WARC-IP-Address", "127.0.0.1"),
                                     ("WARC-Block-Digest", _digest(head + body)),
                                     ("WARC-Payload-Digest", _digest(body)),
                                     ("Content-Type", "application/http; msgtype=response")], head + body))
            req_meta = {"Envelope": {"Format": "WARC", "WARC-Header-Metadata": {
                "WARC-Type": "request", "WARC-Target-URI": page_url, "WARC-Record-ID": req_id, "WARC-Date": date},
                "Payload-Metadata": {"Actual-Content-Type": "application/http; msgtype=request",
                                     "HTTP-Request-Metadata": {"Request-Message": {
                                         "Method": "GET", "Path": name, "Version": "HTTP/1.1"}}}}}
            resp_meta = _wat_payload(page_url, pages[name]["title"], pages[name]["links"], base_url, warc_name,
                                     resp_id, date, html_of[name])
            for refers, meta in ((req_id, req_meta), (resp_id, resp_meta)):
                wat_out.append(_record([("WARC-Type", "metadata"), ("WARC-Target-URI", page_url), ("WARC-Date", date),
                                        ("WARC-Record-ID", ids.new()), ("WARC-Refers-To", refers),
                                        ("Content-Type", "application/json")],
                                       json.dumps(meta, ensure_ascii=False).encode()))
        if k == 0:  # a record whose JSON is cut short, as a damaged file would have it
            target = base_url + "/page/broken.html"
            text = json.dumps(_wat_payload(target, "broken", pages[group[0]]["links"][:2], base_url, warc_name,
                                           ids.new(), ids.date(), "<html></html>"))
            wat_out.insert(2, _record([("WARC-Type", "metadata"), ("WARC-Target-URI", target),
                                       ("WARC-Date", ids.date()), ("WARC-Record-ID", ids.new()),
                                       ("Content-Type", "application/json")], text[: len(text) // 2].encode()))
        wat_name = f"crawl/WIT-MINIWEB-{k:05d}.warc.wat.gz"
        if k == 0:
            broken.append({"file": wat_name, "target": target})
        (root / wat_name).write_bytes(b"".join(wat_out))
        (root / "crawl" / warc_name).write_bytes(b"".join(warc_out))
        wat_files.append(wat_name)
        warc_files.append(f"crawl/{warc_name}")

    rows = {"url": [], "text": [], "page_url": []}
    for name in names:
        page_url = base_url + name
        for link in pages[name]["links"]:
            rows["url"].append(urljoin(page_url, _src(link, base_url)))
            rows["text"].append(link["alt"])
            rows["page_url"].append(page_url)
    pq.write_table(pa.table(rows, schema=pa.schema([("url", pa.string()), ("text", pa.string()),
                                                     ("page_url", pa.string())])), root / "crawl" / "urls.parquet")
    manifest["crawl"] = {"base_url": base_url, "wat": wat_files, "warc": warc_files, "url_list": "crawl/urls.parquet",
                         "pages": len(names), "pairs": len(rows["url"]), "broken_records": broken}
    (root / MANIFEST).write_text(json.dumps(manifest, indent=1, sort_keys=True, ensure_ascii=False))
    log.info("wrote crawl for %s: %d pages, %d pairs", base_url, len(names), len(rows["url"]))
    return World.load(root)
