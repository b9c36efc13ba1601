"""The candidates stage: one crawl or list file in, its (image URL, alt text) pairs out."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Iterator

import pyarrow as pa

from wit import schemas
from wit.config import CandidatesConfig
from wit.records import candidate_uid
from wit.stage import BatchResult, Stage

# Read-level damage counts ride along in the batch's schema metadata under this key.
_ERRORS_KEY = b"wit.read_errors"

FORMATS = ("wat", "warc", "parquet", "csv")


def drop_reason(url: str, text: str, max_text_chars: int) -> str | None:
    """Why a raw pair is not a candidate (a short stable code), or None if it is one."""
    if not text.strip():
        return "empty_text"
    if len(text) > max_text_chars:
        return "text_too_long"
    if "\ufffd" in text or "\ufffd" in url:
        return "invalid_utf8"
    if not url.strip():
        return "empty_url"
    if url.startswith("data:"):
        return "data_uri"
    if url.startswith(("http://", "https://")):
        return None
    scheme, sep, _ = url.partition(":")
    if sep and scheme and scheme.replace("+", "").replace("-", "").replace(".", "").isalnum() and "/" not in scheme:
        return "bad_scheme"
    # No scheme: a relative URL with no page to resolve it against.
    return "relative_url"


def _clean(s: str) -> str:
    """Replace lone surrogates (from JSON escapes or bad decodes) with U+FFFD so Arrow can hold them."""
    try:
        s.encode("utf-8")
        return s
    except UnicodeEncodeError:
        return s.encode("utf-8", "surrogatepass").decode("utf-8", "replace")


@dataclass
class CandidatesStage(Stage):
    """Extracts raw pairs from one input file and keeps the valid, first-seen ones."""

    format: str = "wat"
    url_col: str = "url"
    text_col: str = "text"
    page_url_col: str | None = None
    max_text_chars: int = 1000
    source: str | None = None
    name: str = "candidates"
    output_schema = schemas.CANDIDATES

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise ValueError(f"candidates: unknown format {self.format!r}; choose one of {FORMATS}")

    @classmethod
    def from_config(cls, cfg: CandidatesConfig) -> "CandidatesStage":
        return cls(format=cfg.format, url_col=cfg.url_col, text_col=cfg.text_col, page_url_col=cfg.page_url_col,
                   max_text_chars=cfg.max_text_chars, source=cfg.source)

    def begin_task(self, path: str, index: int) -> None:
        self._seen: set[str] = set()

    def read_task(self, path: str) -> Iterator[pa.Table]:
        if self.format in ("parquet", "csv"):
            from wit.candidates.lists import list_batches

            errors: dict[str, int] = {}
            for t in list_batches(path, self.format, self.url_col, self.text_col, self.page_url_col,
                                  self.batch_rows, errors):
                yield t.replace_schema_metadata({_ERRORS_KEY: json.dumps(errors).encode()}) if errors else t
                errors.clear()
            if errors:  # rows skipped after the last batch
                yield _raw_table([], errors)
            return
        if self.format == "wat":
            from wit.candidates.wat import wat_pairs as pairs_of
        else:
            from wit.candidates.warc import warc_pairs as pairs_of
        errors: dict[str, int] = {}
        rows: list[tuple[str, str, str]] = []
        for row in pairs_of(path, errors):
            rows.append(row)
            if len(rows) >= self.batch_rows:
                yield _raw_table(rows, errors)
                rows = []
                errors.clear()  # the reader holds this dict: counts after this batch go with the next
        # Always a last (maybe empty) batch, so damage found after the last full batch is counted.
        yield _raw_table(rows, errors)

    def process_batch(self, batch: pa.Table) -> BatchResult:
        meta = batch.schema.metadata or {}
        errors = json.loads(meta[_ERRORS_KEY]) if _ERRORS_KEY in meta else {}
        seen = getattr(self, "_seen", None)
        if seen is None:
            seen = self._seen = set()
        source = self.source or self.format
        urls = batch.column("url").to_pylist()
        texts = batch.column("text").to_pylist()
        pages = batch.column("page_url").to_pylist()
        keep_idx: list[int] = []
        uids: list[str] = []
        drop_uids: list[str] = []
        reasons: list[str] = []
        for i, (url, text) in enumerate(zip(urls, texts)):
            url = (url or "").strip()
            text = (text or "").strip()
            urls[i], texts[i] = url, text
            uid = candidate_uid(url, text)
            reason = drop_reason(url, text, self.max_text_chars)
            if reason is None and uid in seen:
                reason = "duplicate"
            if reason is None:
                seen.add(uid)
                keep_idx.append(i)
                uids.append(uid)
            else:
                drop_uids.append(uid)
                reasons.append(reason)
        kept = pa.table(
            {
                "uid": pa.array(uids, pa.string()),
                "url": pa.array([urls[i] for i in keep_idx], pa.string()),
                "text": pa.array([texts[i] for i in keep_idx], pa.string()),
                "page_url": pa.array([pages[i] or "" for i in keep_idx], pa.string()),
                "source": pa.array([source] * len(keep_idx), pa.string()),
            },
            schema=schemas.CANDIDATES,
        )
        return BatchResult(kept=kept, dropped=BatchResult.drops(drop_uids, reasons), errors=errors)


def _raw_table(rows: list[tuple[str, str, str]], errors: dict[str, int]) -> pa.Table:
    cols = list(zip(*rows)) if rows else [(), (), ()]
    t = pa.table({name: pa.array([_clean(v) for v in col], pa.string())
                  for name, col in zip(("url", "text", "page_url"), cols)})
    return t.replace_schema_metadata({_ERRORS_KEY: json.dumps(errors).encode()}) if errors else t
