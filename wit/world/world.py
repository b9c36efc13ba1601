"""The ``World`` handle: paths of everything a generated mini-web holds, read from its manifest."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

MANIFEST = "manifest.json"


@dataclass
class World:
    """A generated mini-web; every path is absolute. ``base_url`` is set once a server runs."""

    root: str
    size: str
    seed: int
    base_url: str | None = None
    wiki_dumps: list[str] = field(default_factory=list)
    wiki_index: list[str] = field(default_factory=list)
    pageviews: list[str] = field(default_factory=list)
    wat: list[str] = field(default_factory=list)
    warc: list[str] = field(default_factory=list)
    url_list: str = ""
    eval_sets: dict[str, str] = field(default_factory=dict)
    concepts: list[str] = field(default_factory=list)
    manifest: dict = field(default_factory=dict, repr=False)

    @classmethod
    def load(cls, root: str | Path) -> "World":
        root = Path(root).resolve()
        m = json.loads((root / MANIFEST).read_text())
        crawl = m.get("crawl") or {}
        abs_ = lambda rel: str(root / rel)  # noqa: E731
        return cls(
            root=str(root), size=m["size"], seed=m["seed"], base_url=crawl.get("base_url"),
            wiki_dumps=[abs_(p) for p in m["wiki"]["dumps"]], wiki_index=[abs_(p) for p in m["wiki"]["index"]],
            pageviews=[abs_(p) for p in m["pageviews"]["files"]],
            wat=[abs_(p) for p in crawl.get("wat", [])], warc=[abs_(p) for p in crawl.get("warc", [])],
            url_list=abs_(crawl["url_list"]) if crawl.get("url_list") else "",
            eval_sets={name: abs_(e["dir"]) for name, e in m["eval"].items()},
            concepts=list(m["concepts"]), manifest=m,
        )

    def reload(self) -> "World":
        """The world as its manifest now says (after ``write_crawl``); keeps a caller-set base_url."""
        w = World.load(self.root)
        w.base_url = w.base_url or self.base_url
        return w

    @property
    def images(self) -> dict[str, dict]:
        """Served path -> manifest entry (concepts, captions, format, size, expected outcome, planted)."""
        return self.manifest["images"]

    def entry(self, url: str) -> dict | None:
        """The manifest entry of a served URL (absolute or a path like "/img/000001.jpg")."""
        return self.images.get(urlsplit(url).path if "://" in url else url)

    def expected(self, url: str) -> str | None:
        """The expected download outcome of a URL: "ok" or a REASONS code (None: not served)."""
        e = self.entry(url)
        return e["expected"] if e else None

    def url(self, path: str) -> str:
        if not self.base_url:
            raise RuntimeError("base_url is not set: start a WorldServer and write_crawl first")
        return self.base_url.rstrip("/") + path
