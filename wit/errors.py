"""The error a user can fix: `wit` prints its one line (naming the file or flag) and exits 2."""

from __future__ import annotations


class UserError(Exception):
    """A bad flag, file, spec or run directory; the message names it."""
