"""The error a user can fix: `wit` prints its one line (naming the file or flag) and exits 2."""

from __future__ import annotations


class UserError(Exception):
    """A bad flag, file, spec or run directory; the message names it."""


class StorageFull(UserError):
    """Out of disk or Ray object store: the message names the step, what ran out and the limits in force."""


def disk_full_message(step: str, where: str) -> str:
    """One line for a step whose write found no space left at ``where`` (a local folder or a URL)."""
    import shutil

    free = ""
    try:
        from wit.io import folders

        fs, path = folders.fs_and_path(where)
        if getattr(fs, "protocol", None) in ("file", ("file", "local")):
            free = f" ({shutil.disk_usage(_existing_parent(path)).free / 2**20:.1f} MiB free there)"
    except Exception:  # noqa: BLE001 - the free space is a courtesy
        pass
    return f"{step}: no space left on the disk of {where}{free}; free space or write the run elsewhere, then rerun to resume"


def _existing_parent(path: str) -> str:
    import os

    while path and not os.path.exists(path):
        path = os.path.dirname(path.rstrip("/"))
    return path or "/"
