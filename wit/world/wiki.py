"""A mini Wikipedia: a pages-articles dump (export schema 0.10, bz2 multistream) and hourly pageviews.

The text uses the concept vocabulary often (head concepts more than tail ones), so unigrams,
bigrams and titles built from it match the mini-web's captions, over a background of filler
articles that makes counts and PMI meaningful.
"""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import random
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

from wit.world.concepts import kind, with_article

NS = "http://www.mediawiki.org/xml/export-0.10/"
DUMP = "enwiki-20240801-pages-articles-multistream.xml.bz2"
INDEX = "enwiki-20240801-pages-articles-multistream-index.txt.bz2"
PAGES_PER_STREAM = 100
NAMESPACES = {-2: "Media", -1: "Special", 0: "", 1: "Talk", 2: "User", 4: "Wikipedia", 6: "File", 10: "Template",
              14: "Category", 100: "Portal"}

_PLACES = ("Brindleford", "Ashcombe", "Marlow Vale", "Kestrel Point", "Oakhurst", "Fenwick", "Dunmore", "Harrowgate",
           "Wexley", "Thornbury", "Calder", "Pembridge", "Norwell", "Elmstead", "Rookwood", "Stanmere")
_TOPICS = ("History", "Geography", "Economy", "Culture", "Railway station", "Parish church", "Football club",
           "Grammar school", "Bridge", "Festival", "Market", "Library", "Museum", "River", "Castle", "Harbour")
_NOUNS = ("town", "village", "river", "church", "school", "market", "bridge", "station", "council", "mill", "farm",
          "road", "hall", "museum", "festival", "harbour", "castle", "garden", "library", "parish", "county",
          "railway", "club", "league", "season", "album", "song", "film", "author", "painter", "building")
_VERBS = ("was built", "was founded", "was rebuilt", "was opened", "was closed", "was extended", "was renamed",
          "was restored", "became famous", "was listed")
_ADJ = ("old", "new", "small", "large", "local", "famous", "historic", "modern", "northern", "southern")


def _title(s: str) -> str:
    return s[:1].upper() + s[1:]


def _sentence(rng: random.Random) -> str:
    a, b = rng.sample(_NOUNS, 2)
    return f"The {rng.choice(_ADJ)} {a} of the {b} {rng.choice(_VERBS)} in {rng.randint(1820, 2020)}."


def _concept_sentence(concept: str, rng: random.Random) -> str:
    a = with_article(concept)
    return rng.choice((
        f"{_title(a)} is often drawn by children.",
        f"In heraldry, {a} appears on the flag of the {rng.choice(_NOUNS)}.",
        f"The {concept} is a common picture in books.",
        f"Artists have painted {a} for centuries.",
        f"A photo of {a} was used on the {rng.choice(_ADJ)} poster.",
        f"Many logos use {a} because it is easy to recognise.",
    ))


def _concept_article(concept: str, weight: int, concepts: list[str], rng: random.Random) -> str:
    t = _title(concept)
    words = concept.split()
    first = words[-1]
    lines = [
        f"{{{{Short description|{_title(with_article(concept))}}}}}",
        "{{Infobox picture",
        f"| name = {t}",
        f"| image = {t}.png",
        f"| colour = {words[0] if len(words) > 1 else 'various'}",
        "}}",
        f"'''{_title(with_article(concept))}''' is a simple picture of {with_article(concept)}. The "
        f"[[{_title(first)}|{first}]] is one of the most common images.<ref>{{{{cite web |title={t} "
        f"|url=https://example.org/{first} |access-date=2024-08-01}}}}</ref>",
        "",
        "== Appearance ==",
        f"[[File:{t}.png|thumb|right|{_title(with_article(concept))} on a plain background]]",
    ]
    # Head concepts are written about more, like popular topics on the real Wikipedia.
    for _ in range(3 + min(12, weight // 8)):
        lines.append(_concept_sentence(concept, rng) + " " + _sentence(rng))
    lines += [
        "",
        "== Properties ==",
        '{| class="wikitable"',
        "! Property !! Value",
        "|-",
        f"| Name || {concept}",
        "|-",
        f"| Kind || {kind(concept)}",
        "|}",
        f"The {concept} is listed in the catalogue.<ref name=\"cat\">Catalogue of pictures, "
        f"p. {rng.randint(2, 300)}.</ref>",
        "",
        "== See also ==",
    ]
    lines += [f"* [[{_title(c)}]]" for c in rng.sample(concepts, 3) if c != concept]
    lines += ["", "== References ==", "{{Reflist}}", "",
              f"[[Category:{'Shapes' if kind(concept) != 'object' else 'Objects'}]]", "[[Category:Pictures]]"]
    return "\n".join(lines)


def _filler_article(title: str, concepts: list[str], weights: list[float], rng: random.Random) -> str:
    lines = [f"{{{{Infobox settlement | name = {title} | country = Nowhere}}}}",
             f"'''{title}''' is a place in the county of [[{rng.choice(_PLACES)}]]."]
    for h in ("History", "Geography"):
        lines += ["", f"== {h} ==", "=== Early years ===" if rng.random() < 0.3 else ""]
        for _ in range(rng.randint(3, 7)):
            lines.append(_sentence(rng))
            if rng.random() < 0.3:
                lines.append(_concept_sentence(rng.choices(concepts, weights)[0], rng))
    lines += ["", f"[[Category:Places in {rng.choice(_PLACES)}]]"]
    return "\n".join(lines)


def _page_xml(title: str, ns: int, page_id: int, text: str, rng: random.Random, redirect: str | None = None) -> str:
    rev = 1_000_000 + page_id * 7
    sha1 = int(hashlib.sha1(text.encode()).hexdigest(), 16)
    b36 = ""
    while sha1:
        sha1, d = divmod(sha1, 36)
        b36 = "0123456789abcdefghijklmnopqrstuvwxyz"[d] + b36
    out = [
        "  <page>",
        f"    <title>{escape(title)}</title>",
        f"    <ns>{ns}</ns>",
        f"    <id>{page_id}</id>",
    ]
    if redirect:
        out.append(f"    <redirect title={quoteattr(redirect)} />")
    out += [
        "    <revision>",
        f"      <id>{rev}</id>",
        f"      <parentid>{rev - 3}</parentid>",
        f"      <timestamp>2024-07-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:"
        f"{rng.randint(0, 59):02d}:00Z</timestamp>",
        "      <contributor>",
        "        <username>WitBot</username>",
        "        <id>42</id>",
        "      </contributor>",
        "      <comment>generated by wit.world</comment>",
        "      <model>wikitext</model>",
        "      <format>text/x-wiki</format>",
        f"      <text bytes=\"{len(text.encode())}\" xml:space=\"preserve\">{escape(text)}</text>",
        f"      <sha1>{b36.rjust(31, '0')}</sha1>",
        "    </revision>",
        "  </page>",
    ]
    return "\n".join(out) + "\n"


def _siteinfo() -> str:
    ns = "\n".join(
        f'      <namespace key="{k}" case="first-letter" />' if not v else
        f'      <namespace key="{k}" case="first-letter">{v}</namespace>' for k, v in NAMESPACES.items())
    return (f'<mediawiki xmlns="{NS}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
            f'xsi:schemaLocation="{NS} http://www.mediawiki.org/xml/export-0.10.xsd" version="0.10" xml:lang="en">\n'
            "  <siteinfo>\n    <sitename>Wikipedia</sitename>\n    <dbname>enwiki</dbname>\n"
            "    <base>https://en.wikipedia.org/wiki/Main_Page</base>\n"
            "    <generator>MediaWiki 1.43.0-wmf.16</generator>\n"
            f"    <case>first-letter</case>\n    <namespaces>\n{ns}\n    </namespaces>\n  </siteinfo>\n")


def write_wiki(out: Path, concepts: list[str], counts: dict[str, int], rng: random.Random, filler_pages: int) -> dict:
    """Write the multistream dump and its index under ``out``; return paths (relative to out's parent) and stats."""
    out.mkdir(parents=True, exist_ok=True)
    weights = [float(counts[c]) for c in concepts]
    pages: list[tuple[str, int, str, str | None]] = []  # title, ns, text, redirect target
    for c in concepts:
        pages.append((_title(c), 0, _concept_article(c, counts[c], concepts, rng), None))
    words = sorted({w for c in concepts for w in c.split()})
    for w in words:
        text = (f"'''{_title(w)}''' is a word used in the names of pictures such as "
                + ", ".join(f"[[{_title(c)}|{c}]]" for c in concepts if w in c.split()) + ".\n"
                + ("\n".join(_sentence(rng) for _ in range(2))) + "\n[[Category:Words]]")
        if _title(w) not in {p[0] for p in pages}:
            pages.append((_title(w), 0, text, None))
    titles = set()
    while len(titles) < filler_pages:
        titles.add(f"{rng.choice(_TOPICS)} of {rng.choice(_PLACES)}" if rng.random() < 0.6
                   else f"{rng.choice(_PLACES)} {rng.choice(_TOPICS).lower()} ({rng.randint(1850, 2020)})")
    for t in sorted(titles):
        pages.append((t, 0, _filler_article(t, concepts, weights, rng), None))
    for c in concepts:  # redirects from other capitalisations and plurals
        if " " in c:
            pages.append((c.title(), 0, f"#REDIRECT [[{_title(c)}]]\n\n{{{{R from other capitalisation}}}}", _title(c)))
    for c in [c for c in concepts if kind(c) == "object"]:
        pages.append((_title(c) + "s", 0, f"#REDIRECT [[{_title(c)}]]\n\n{{{{R from plural}}}}", _title(c)))
    pages += [
        ("Template:Infobox picture", 10, "{| class=\"infobox\"\n! {{{name}}}\n|-\n| [[File:{{{image}}}]]\n|}\n"
         "<noinclude>[[Category:Infobox templates]]</noinclude>", None),
        ("Category:Shapes", 14, "Pictures of coloured shapes.\n[[Category:Pictures]]", None),
        ("Category:Objects", 14, "Pictures of simple objects.\n[[Category:Pictures]]", None),
        ("Wikipedia:About", 4, "This is a '''mini''' encyclopedia generated for tests.", None),
        ("Portal:Shapes", 100, "Welcome to the shapes portal: " + ", ".join(f"[[{_title(c)}]]" for c in concepts[:5]),
         None),
    ]
    for c in concepts[:6]:
        pages.append((f"File:{_title(c)}.png", 6, f"== Summary ==\nA drawing of {with_article(c)}.\n"
                      "== Licensing ==\n{{PD-self}}", None))
        pages.append((f"Talk:{_title(c)}", 1, f"== Colour ==\nIs the {c} the right colour? ~~~~", None))
    order = list(range(len(pages)))
    rng.shuffle(order)
    pages = [pages[i] for i in order]

    blob = io.BytesIO()
    index_lines = []
    blob.write(bz2.compress(_siteinfo().encode()))
    page_id = 10
    streams = 1
    for start in range(0, len(pages), PAGES_PER_STREAM):
        offset = blob.tell()
        chunk = []
        for title, ns, text, redirect in pages[start:start + PAGES_PER_STREAM]:
            page_id += rng.randint(1, 9)
            chunk.append(_page_xml(title, ns, page_id, text, rng, redirect))
            index_lines.append(f"{offset}:{page_id}:{title}")
        blob.write(bz2.compress("".join(chunk).encode()))
        streams += 1
    blob.write(bz2.compress(b"</mediawiki>\n"))
    streams += 1
    (out / DUMP).write_bytes(blob.getvalue())
    (out / INDEX).write_bytes(bz2.compress(("\n".join(index_lines) + "\n").encode()))
    articles = [t for t, ns, _, redirect in pages if ns == 0 and redirect is None]
    return {"dumps": [f"{out.name}/{DUMP}"], "index": [f"{out.name}/{INDEX}"], "pages": len(pages),
            "streams": streams, "redirects": sum(1 for p in pages if p[3]), "articles": articles}


def write_pageviews(out: Path, articles: list[str], counts: dict[str, int], rng: random.Random, hours: int) -> dict:
    """Hourly pageview files (``domain title views bytes``); returns paths and the titles that pass
    MetaCLIP's rule (domain "en", no ':' in the title, hourly views >= 50 summed >= 70)."""
    out.mkdir(parents=True, exist_ok=True)
    concept_titles = {_title(c): n for c, n in counts.items()}
    ranked = sorted(concept_titles, key=lambda t: -concept_titles[t])
    popular = set(ranked[: int(len(ranked) * 0.6)])  # head concepts are looked at more
    lucky = set(rng.sample([a for a in articles if a not in concept_titles], k=min(10, len(articles) // 10)))
    totals: dict[str, int] = {}
    files = []
    for hour in range(hours):
        rows = [("en", "Main_Page", rng.randint(5000, 9000)), ("en", "Special:Search", rng.randint(800, 1500)),
                ("en", "Category:Shapes", rng.randint(50, 120)), ("en", "Wikipedia:About", rng.randint(50, 90)),
                ("en.m", "Main_Page", rng.randint(3000, 6000)), ("commons.m", "File:Red_circle.png", 3)]
        for title in articles:
            if title in popular or title in lucky:
                views = rng.randint(50, 400) if rng.random() < 0.7 else rng.randint(1, 49)
            elif title in concept_titles:
                views = rng.randint(5, 45)  # many hours, yet none reaches 50: excluded
            else:
                views = rng.randint(1, 30) if rng.random() < 0.5 else 0
            if views:
                rows.append(("en", title.replace(" ", "_"), views))
            if views >= 50:
                totals[title] = totals.get(title, 0) + views
            if rng.random() < 0.3:
                rows.append((rng.choice(["en.m", "de", "fr", "ja.m", "es"]), title.replace(" ", "_"),
                             rng.randint(1, 200)))
        if ranked and hour == 0:
            rows.append(("en", "Talk:" + ranked[0].replace(" ", "_"), 75))  # ':' titles never count
        rows.sort()
        text = "".join(f"{d} {t} {v} 0\n" for d, t, v in rows)
        name = f"pageviews-20240801-{hour:02d}0000.gz"
        buf = io.BytesIO()
        with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0) as gz:
            gz.write(text.encode())
        (out / name).write_bytes(buf.getvalue())
        files.append(f"{out.name}/{name}")
    return {"files": files, "hourly_min": 50, "views_min": 70,
            "popular_titles": sorted(t for t, v in totals.items() if v >= 70)}
