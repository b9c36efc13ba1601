"""Article titles from Wikimedia hourly pageview files (``domain title views bytes``, gzip).

MetaCLIP's rule: lines of the ``en`` domain whose hourly count is >= 50 are summed per title
across all files; titles containing ':' are skipped and '_' becomes ' '. A line without exactly
four space-separated fields, or whose count is not an integer, is a counted skip (``bad_line``)
whose file and line number are kept (the first few) for the provenance. A truncated or corrupt
gzip file keeps the lines read before the damage and counts the file (``truncated_gz``).
"""

from __future__ import annotations

import gzip
import logging
import zlib
from dataclasses import dataclass, field

import fsspec

log = logging.getLogger(__name__)

MAX_BAD_POSITIONS = 20


@dataclass
class PageviewTitles:
    views: dict[str, int] = field(default_factory=dict)
    stats: dict[str, int] = field(default_factory=lambda: dict.fromkeys(
        ("lines", "domain_lines", "below_hourly_min", "colon_skipped", "bad_line", "truncated_gz"), 0))
    bad_positions: list[str] = field(default_factory=list)
    damaged_files: list[str] = field(default_factory=list)


HOUR = "{hour}"


def expand_urls(urls: list[str]) -> list[str]:
    """Expand an entry containing ``{hour}`` into its 24 hourly files (``000000`` .. ``230000``)."""
    out = []
    for u in urls:
        out.extend(u.replace(HOUR, f"{h:02d}") for h in range(24)) if HOUR in u else out.append(u)
    return out


def read_pageviews(urls: list[str], hourly_min: int = 50, domains: tuple[str, ...] = ("en",)) -> PageviewTitles:
    """Sum the qualifying hourly counts of every file (compression inferred from the name)."""
    out = PageviewTitles()
    st = out.stats
    want = {d.encode() for d in domains}
    for url in expand_urls(urls):
        n = 0
        try:
            with fsspec.open(url, "rb", compression="infer") as f:
                for n, raw in enumerate(f, 1):
                    st["lines"] += 1
                    fields = raw.rstrip(b"\r\n").split(b" ")
                    if len(fields) != 4 or not fields[2].isdigit():
                        st["bad_line"] += 1
                        if len(out.bad_positions) < MAX_BAD_POSITIONS:
                            out.bad_positions.append(f"{url}:{n}")
                        continue
                    if fields[0] not in want:
                        continue
                    st["domain_lines"] += 1
                    views = int(fields[2])
                    if views < hourly_min:
                        st["below_hourly_min"] += 1
                        continue
                    title = fields[1].decode("utf-8", "replace")
                    if ":" in title:
                        st["colon_skipped"] += 1
                        continue
                    title = title.replace("_", " ")
                    out.views[title] = out.views.get(title, 0) + views
        except (EOFError, zlib.error, gzip.BadGzipFile) as err:
            st["truncated_gz"] += 1
            out.damaged_files.append(f"{url}:{n}")
            log.warning("pageviews: %s is damaged after line %d (%s); kept the lines before", url, n, err)
    if st["bad_line"]:
        log.warning("pageviews: skipped %d malformed line(s), first at %s", st["bad_line"], out.bad_positions[0])
    return out


def titles_above(pv: PageviewTitles, views_min: int) -> list[tuple[str, int]]:
    """(title, summed views) with views >= ``views_min``, most viewed first, then by title."""
    return sorted(((t, v) for t, v in pv.views.items() if v >= views_min), key=lambda tv: (-tv[1], tv[0]))
