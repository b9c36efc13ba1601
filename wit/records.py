"""Record identity: stable uids and seeded per-record randomness derived from record keys."""

from __future__ import annotations

import hashlib
import struct


def sample_key(uid: str) -> str:
    """The sample's key in shards: 20 hex digits (80 bits) of a hash of the uid.

    Safe as a tar member name whatever the uid holds (``../``, ``/``, NUL), and the same on every
    rerun; the shard stage resolves the rare collision within a shard.
    """
    return hashlib.blake2b(uid.encode("utf-8", "surrogatepass"), digest_size=10).hexdigest()


def candidate_uid(url: str, text: str) -> str:
    """Stable 128-bit hex uid of an (image URL, alt text) pair."""
    h = hashlib.blake2b(digest_size=16)
    h.update(url.encode("utf-8", "surrogatepass"))
    h.update(b"\x00")
    h.update(text.encode("utf-8", "surrogatepass"))
    return h.hexdigest()


def unit_hash(*parts: object) -> float:
    """A uniform number in [0, 1) derived only from ``parts`` (e.g. uid, entry, seed)."""
    h = hashlib.blake2b("\x1f".join(str(p) for p in parts).encode("utf-8", "surrogatepass"), digest_size=8)
    return struct.unpack("<Q", h.digest())[0] / 2.0**64
