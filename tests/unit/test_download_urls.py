"""URL normalisation against a reference built independently (idna + percent-encoding by the WHATWG
sets + urllib), as a property over generated URLs; and no input ever raises."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

import idna
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wit.download.urls import is_public, normalize, parse

# WHATWG percent-encode sets for special URLs: path = C0 controls, space, " # < > ? ^ ` { }, and
# non-ASCII; query = C0 controls, space, " # < > ' and non-ASCII.
_PATH_SET = set(' "#<>?^`{}')
_QUERY_SET = set(" \"#<>'")


def _encode(text: str, special: set[str]) -> str:
    return "".join(c if (c.isascii() and c not in special and ord(c) > 0x1F) else
                   "".join(f"%{b:02X}" for b in c.encode("utf-8")) for c in text)


_LETTERS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
label = st.text(alphabet=_LETTERS + "äöüéñçαβγдж", min_size=1, max_size=20)
host = st.tuples(st.lists(label, min_size=1, max_size=3), st.sampled_from(["com", "org", "de", "рф", "example"]))
# no "%" (escapes are kept as written), "\\" (a slash to browsers), "." segments (resolved), controls
seg_char = st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="%\\/?#")
segment = st.text(alphabet=seg_char, min_size=1, max_size=12).filter(lambda s: s.strip(".") != "" and
                                                                       s.strip() == s)
# a URL's trailing spaces are stripped before parsing (WHATWG), so a query ending in one is another case
query = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="%#"),
                max_size=15).filter(lambda s: s.rstrip(" ") == s)


@settings(max_examples=300, deadline=None)
@given(host=host, port=st.one_of(st.none(), st.integers(1, 65535)), path=st.lists(segment, max_size=4),
       q=st.one_of(st.none(), query), scheme=st.sampled_from(["http", "https"]))
def test_normalisation_matches_the_reference(host, port, path, q, scheme):
    labels, tld = host
    name = ".".join([*labels, tld])
    url = f"{scheme}://{name}{'' if port is None else f':{port}'}/{'/'.join(path)}{'' if q is None else '?' + q}"
    got = normalize(url)
    ref_host = idna.encode(name, uts46=True).decode("ascii")
    default = {"http": 80, "https": 443}[scheme]
    ref_port = "" if port in (None, default) else f":{port}"
    ref = f"{scheme}://{ref_host}{ref_port}/{_encode('/'.join(path), _PATH_SET)}"
    if q is not None and q != "":
        ref += "?" + _encode(q, _QUERY_SET)
    assert got == ref
    parts = urlsplit(got)
    assert got.isascii() and parts.hostname == ref_host
    assert parts.port == (None if port in (None, default) else port)


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=60).map(lambda s: "http://" + s))
def test_any_text_parses_or_is_refused_and_normal_forms_are_fixed_points(text):
    p = parse(text)
    if p is None:
        return
    assert p.href.isascii() and " " not in p.href and parse(p.href) == p
    assert 0 < p.port < 65536 and p.target.startswith("/")


@pytest.mark.parametrize("url,host", [
    ("http://2130706433/", "127.0.0.1"), ("http://0x7f000001/", "127.0.0.1"), ("http://0177.0.0.1/", "127.0.0.1"),
    ("http://127.1/", "127.0.0.1"), ("http://user:pw@127.0.0.1/", "127.0.0.1"), ("http://[::ffff:7f00:1]/", "::ffff:7f00:1"),
    ("http://LOCALHOST./", "localhost."), ("http://bücher.de/", "xn--bcher-kva.de"),
])
def test_numeric_and_short_forms_become_canonical_hosts(url, host):
    assert parse(url).host == host


@pytest.mark.parametrize("addr,public", [
    ("8.8.8.8", True), ("2606:4700::1111", True), ("127.0.0.1", False), ("10.1.2.3", False), ("172.31.0.1", False),
    ("192.168.0.1", False), ("169.254.169.254", False), ("100.64.0.1", False), ("100.127.255.255", False),
    ("0.0.0.0", False), ("224.0.0.1", False), ("255.255.255.255", False), ("::1", False), ("::", False),
    ("fe80::1", False), ("fc00::1", False), ("ff02::1", False), ("::ffff:127.0.0.1", False),
    ("::ffff:8.8.8.8", True), ("2002:7f00:1::", False), ("64:ff9b::a00:1", False),
])
def test_public_address_classification(addr, public):
    assert is_public(ipaddress.ip_address(addr)) is public


def test_real_crawl_urls_parse_and_spaces_are_encoded(shared_data):
    """Every http(s) image URL of the real crawl samples is requestable; those with spaces included."""
    from wit.candidates.warc import warc_pairs
    from wit.candidates.wat import wat_pairs

    urls = []
    for path in sorted((shared_data / "crawl").glob("*.war*")):
        if path.name.endswith(".wet"):
            continue
        pairs = wat_pairs if ".wat" in path.name else warc_pairs
        urls += [u for u, _, _ in pairs(str(path), {}) if u.startswith(("http://", "https://"))]
    spaced = [u for u in urls if " " in u]
    assert len(urls) > 1000 and len(spaced) > 800
    parsed = [parse(u) for u in urls]
    assert all(p is not None and " " not in p.href for p in parsed)
    assert all("%20" in parse(u).href for u in spaced)
