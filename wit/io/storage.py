"""Remote storage (``s3://``, ``gs://``) through fsspec: storage options and a one-line credentials error.

Every path in wit goes through ``fsspec.core.url_to_fs``, which takes its per-protocol defaults
from ``fsspec.config.conf``. ``apply`` puts ``--storage-option`` values there and into the
``FSSPEC_<PROTOCOL>`` environment variable, which fsspec reads at import in the Ray workers and
subprocesses this process starts. A private endpoint (MinIO, moto) is reached the same way,
or through ``AWS_ENDPOINT_URL`` / ``FSSPEC_S3_ENDPOINT_URL``.
"""

from __future__ import annotations

import json
import os

import fsspec.config

DEFAULT_PROTOCOL = "s3"
#: exception class names (botocore, google-auth) that mean "no credentials were found"
CREDENTIAL_ERRORS = ("NoCredentialsError", "PartialCredentialsError", "DefaultCredentialsError")


def parse(items: list[str]) -> dict[str, dict]:
    """``["anon=true", "gcs.token=anon"]`` -> ``{"s3": {"anon": True}, "gcs": {"token": "anon"}}``.

    A key without a protocol applies to s3 (Common Crawl's bucket); values are JSON when they
    parse as JSON (true, 3, "x"), else the plain string.
    """
    out: dict[str, dict] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--storage-option {item!r}: expected [PROTOCOL.]KEY=VALUE, e.g. anon=true")
        proto, _, name = key.rpartition(".")
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw
        out.setdefault(proto or DEFAULT_PROTOCOL, {})[name] = value
    return out


def apply(options: dict[str, dict]) -> None:
    """Make ``options`` the defaults of every filesystem of their protocol, here and in child processes."""
    for proto, kwargs in options.items():
        merged = {**fsspec.config.conf.get(proto, {}), **kwargs}
        fsspec.config.conf[proto] = merged
        os.environ[f"FSSPEC_{proto.upper()}"] = json.dumps(merged)


def credentials_message(err: BaseException) -> str | None:
    """One line for a missing-credentials error anywhere in ``err``'s chain, else None."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if type(err).__name__ in CREDENTIAL_ERRORS:
            return ("no credentials for remote storage: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
                    "(or AWS_PROFILE; GOOGLE_APPLICATION_CREDENTIALS for gs://), or pass "
                    "--storage-option anon=true for a public bucket")
        err = err.__cause__ or err.__context__
    return None


def is_remote(url: str) -> bool:
    return "://" in str(url) and not str(url).startswith("file://")


def duckdb_path(url: str) -> str:
    """A path DuckDB reads: the local path, or the remote URL itself (see ``duckdb_connect``)."""
    from fsspec.core import url_to_fs

    return str(url) if is_remote(url) else url_to_fs(str(url))[1]


def duckdb_connect(urls: list[str] | str = ()):
    """A DuckDB connection that reads the remote ``urls`` through their fsspec filesystems (no httpfs)."""
    import duckdb

    con = duckdb.connect()
    for proto in sorted({u.split("://", 1)[0] for u in ([urls] if isinstance(urls, str) else urls) if is_remote(u)}):
        con.register_filesystem(fsspec.filesystem(proto))
    return con
