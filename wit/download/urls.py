"""URL normalisation as browsers do it, and the private-address guard.

Parsing follows the WHATWG URL Standard through ``ada_url`` (the parser behind Node.js): spaces and
raw non-ASCII in the path and query are percent-encoded as UTF-8, hosts are IDNA-encoded, numeric
IPv4 forms (``2130706433``, ``0x7f000001``, ``127.1``) become dotted quads. What a browser would
still accept but DNS cannot resolve (a label over 63 characters, an empty label, a name over 253
characters) and any control character but tab and newline (which the standard removes) are
refused here, so a malformed URL costs no lookup.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass

import ada_url

_TAB_NEWLINE = re.compile(r"[\t\n\r]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SCHEMES = ("http:", "https:")


@dataclass(frozen=True)
class ParsedURL:
    """A normalised http(s) URL split into what a request needs."""

    href: str
    scheme: str
    host: str  # IDNA-encoded name, dotted IPv4, or bare IPv6 (no brackets)
    port: int
    target: str  # path + query, what goes on the request line

    @property
    def ip(self) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
        try:
            return ipaddress.ip_address(self.host)
        except ValueError:
            return None


def parse(url: str) -> ParsedURL | None:
    """The normalised form of ``url``, or None when it is not a well-formed http(s) URL."""
    # As the standard does: strip surrounding C0/space, drop every tab and newline (HTML wraps long
    # src values); any other control character is refused.
    url = _TAB_NEWLINE.sub("", url.strip("".join(map(chr, range(0x21)))))
    if _CONTROL.search(url):
        return None
    try:
        u = ada_url.URL(url)
    except ValueError:
        return None
    if u.protocol not in _SCHEMES:
        return None
    host = u.hostname
    if not host:
        return None
    if host.startswith("["):
        host = host[1:-1]
    elif not _dns_name_ok(host):
        return None
    port = int(u.port) if u.port else (443 if u.protocol == "https:" else 80)
    # The fragment never goes on the wire; credentials are never sent.
    target = (u.pathname or "/") + u.search
    href = f"{u.protocol}//{u.host}{target}"
    return ParsedURL(href, u.protocol[:-1], host, port, target)


def _dns_name_ok(host: str) -> bool:
    name = host[:-1] if host.endswith(".") else host
    if not name or len(name) > 253:
        return False
    return all(0 < len(label) <= 63 for label in name.split("."))


def normalize(url: str) -> str | None:
    """The WHATWG-normalised href of an http(s) URL (no credentials, no fragment), or None."""
    p = parse(url)
    return p.href if p else None


def is_public(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """True for a globally routable unicast address (not loopback, private, link-local, CGNAT, ...)."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo[1] if ip.teredo else None)
        if embedded is not None and not is_public(embedded):
            return False
        if ip in _NAT64 and not is_public(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)):
            return False
    return ip.is_global and not ip.is_multicast


_NAT64 = ipaddress.ip_network("64:ff9b::/96")
