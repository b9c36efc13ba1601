"""Resuming a run directory safely: step fingerprints and records, and the one-run-at-a-time lock.

A step's record ``FOLDER/_step.json`` holds ``{"fingerprint", "state": "running"|"done", "result"}``.
The fingerprint hashes the step's name, the run seed, its config section, the size and mtime of
every local file or folder its config names (the world's dumps, crawl files, eval sets) and the
same of every file in its upstream folders. Same fingerprint and done: the step is skipped.
Same fingerprint and running: its tasks resume from their completion markers. Anything else: the
step's folders and ledger parts are removed and it is recomputed, with every step downstream.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from wit.errors import UserError
from wit.io import folders

if TYPE_CHECKING:
    from wit.graph import Step
    from wit.pipeline import RunContext, StepContext

log = logging.getLogger(__name__)

RECORD = "_step.json"
LOCK = ".lock"


def _local(url: str) -> Path | None:
    """The local path of ``url``, or None for a remote filesystem."""
    if "://" in url and not url.startswith("file://"):
        return None
    return Path(url.removeprefix("file://"))


def _tree(path: Path) -> Iterator[tuple[str, int, int]]:
    """(relative name, size, mtime_ns) of every file under ``path`` (or of ``path`` itself), sorted."""
    if path.is_file():
        st = path.stat()
        yield "", st.st_size, st.st_mtime_ns
        return
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(files):
            if name == RECORD:
                continue
            p = Path(root, name)
            st = p.stat()
            yield str(p.relative_to(path)), st.st_size, st.st_mtime_ns


def _folder_digest(url: str) -> str:
    h = hashlib.blake2b(digest_size=16)
    local = _local(url)
    if local is None:
        fs, path = folders.fs_and_path(url)
        for p, info in sorted(fs.find(path, detail=True).items()):
            if not p.endswith("/" + RECORD):
                h.update(f"{p}\0{info.get('size')}\0{info.get('mtime', info.get('LastModified'))}\n".encode())
    elif local.exists():
        for entry in _tree(local):
            h.update("\0".join(map(str, entry)).encode() + b"\n")
    return h.hexdigest()


def _named_paths(value: Any) -> Iterator[str]:
    """Every string in a config value that names an existing local file or folder."""
    if isinstance(value, dict):
        for v in value.values():
            yield from _named_paths(v)
    elif isinstance(value, list):
        for v in value:
            yield from _named_paths(v)
    elif isinstance(value, str) and value and len(value) < 4096:
        import glob

        paths = sorted(glob.glob(value)) if any(c in value for c in "*?[") else [value]
        yield from (p for p in paths if os.path.exists(p))


def config_doc(section) -> dict | None:
    """A step's config section as the fingerprint sees it: without the fields that only set how fast
    the step runs (``SPEED_ONLY``, e.g. download's ``threads``), so retuning them resumes the step."""
    if section is None:
        return None
    doc = json.loads(section.model_dump_json())
    for name in getattr(section, "SPEED_ONLY", ()):
        doc.pop(name, None)
    return doc


def fingerprint(ctx: "StepContext") -> str:
    """The fingerprint of one step as this run would compute it now."""
    spec = ctx.spec
    section = getattr(spec, ctx.step.name, None)
    config = config_doc(section)
    doc = {"step": ctx.step.name, "seed": spec.seed, "config": config,
           "files": {p: _folder_digest(p) for p in sorted(set(_named_paths(config)))},
           "upstream": {u: _folder_digest(ctx.run.folder(u)) for u in ctx.step.upstream}}
    return hashlib.blake2b(json.dumps(doc, sort_keys=True).encode(), digest_size=16).hexdigest()


def _record(folder: str) -> dict | None:
    url = folders.join(folder, RECORD)
    return folders.read_json(url) if folders.exists(url) else None


def state(folder: str, fp: str) -> str:
    """``done`` / ``running`` (same fingerprint), ``stale`` (another, or output of unknown origin), ``new``."""
    rec = _record(folder)
    if rec is None:
        return "stale" if folders.exists(folder) else "new"
    if rec.get("fingerprint") != fp:
        return "stale"
    return "done" if rec.get("state") == "done" else "running"


def result(folder: str) -> dict:
    """The counts a done step returned."""
    return dict((_record(folder) or {}).get("result") or {}, skipped=True)


def start(folder: str, fp: str) -> None:
    folders.write_json(folders.join(folder, RECORD), {"fingerprint": fp, "state": "running"})


def finish(folder: str, fp: str, res: dict) -> None:
    folders.write_json(folders.join(folder, RECORD), {"fingerprint": fp, "state": "done", "result": res})


def clear(run: "RunContext", step: "Step") -> None:
    """Remove what ``step`` wrote: its folder, the folders it owns and its ledger parts."""
    for name in (step.folder, *step.owns):
        fs, path = folders.fs_and_path(run.path(name))
        if fs.exists(path):
            log.info("removing %s (recomputed)", path)
            fs.rm(path, recursive=True)
    fs, path = folders.fs_and_path(run.ledger)
    if fs.exists(path):
        for part in fs.glob(f"{path}/{step.name}-*.parquet"):
            fs.rm(part)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class RunLock:
    """``RUN/.lock`` holding this process's pid while a run writes RUN; a second run is refused.

    A lock left by a process that no longer exists on this host is taken over. Remote run
    directories are not locked (no atomic create there).
    """

    def __init__(self, out: str):
        self.out = out
        local = _local(out)
        self.path = local / LOCK if local is not None else None
        self.held = False

    def __enter__(self) -> "RunLock":
        if self.path is None:
            return self
        me = {"pid": os.getpid(), "host": socket.gethostname()}
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                try:
                    other = json.loads(self.path.read_text() or "{}")
                except (OSError, ValueError):
                    other = {}
                pid, host = other.get("pid"), other.get("host")
                if host == me["host"] and isinstance(pid, int) and not _alive(pid):
                    log.warning("taking over %s left by pid %d, which is gone", self.path, pid)
                    self.path.unlink(missing_ok=True)
                    continue
                raise UserError(f"{self.out} is in use by another wit run (pid {pid} on {host}); wait for it to "
                                f"end, or delete {self.path} if that process is gone") from None
            with os.fdopen(fd, "w") as f:
                json.dump(me, f)
            self.held = True
            return self
        raise UserError(f"could not take the lock {self.path}")

    def __exit__(self, *exc) -> None:
        if self.held and self.path is not None:
            self.path.unlink(missing_ok=True)
            self.held = False
