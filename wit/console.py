"""What the terminal shows: logging levels, one progress bar per stage, Ray's own chatter in a file.

By default a command prints warnings and a bar per stage (tasks done, rows/s, ETA); ``-v`` adds
INFO lines, ``-q`` leaves errors only (no bars), ``--log-file`` keeps everything at INFO (DEBUG with
``-vv``) in a file as well. Ray's progress and INFO lines go to ``RUN/logs/ray.log``.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from tqdm.auto import tqdm

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
#: Ray loggers whose records belong in RUN/logs/ray.log, not on the terminal
RAY_LOGGERS = ("ray", "ray.data", "ray.train", "ray.tune")


def setup_logging(verbose: int = 0, quiet: bool = False, log_file: str | None = None) -> None:
    """Terminal at WARNING (INFO with -v, DEBUG with -vv, ERROR with -q); ``log_file`` at INFO or finer."""
    level = logging.ERROR if quiet else [logging.WARNING, logging.INFO, logging.DEBUG][min(verbose, 2)]
    root = logging.getLogger()
    for h in [h for h in root.handlers if getattr(h, "_wit", False)]:  # a second call (tests) replaces ours only
        root.removeHandler(h)
    term = logging.StreamHandler()
    term._wit = True
    term.setLevel(level)
    term.setFormatter(logging.Formatter(FORMAT))
    root.addHandler(term)
    file_level = logging.DEBUG if verbose >= 2 else logging.INFO
    if log_file:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        fh = logging.FileHandler(log_file)
        fh._wit = True
        fh.setLevel(file_level)
        fh.setFormatter(logging.Formatter(FORMAT))
        root.addHandler(fh)
    root.setLevel(min(level, file_level) if log_file else level)
    logging.captureWarnings(True)
    if quiet:
        os.environ["TQDM_DISABLE"] = "1"  # read by every tqdm bar, here and in child processes


def quiet_ray_before_init() -> None:
    """Environment for a Ray started from here: no token-auth notice on a local cluster."""
    logging.getLogger("ray._private.authentication").setLevel(logging.ERROR)
    logging.getLogger("ray._private.authentication.authentication_token_setup").setLevel(logging.ERROR)


def route_ray_logs(log_dir: str | None) -> None:
    """Send Ray's own log records to ``log_dir/ray.log`` (dropped when None) instead of the terminal."""
    handler: logging.Handler = logging.NullHandler()
    if log_dir:
        Path(log_dir).mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(Path(log_dir) / "ray.log")
        handler.setFormatter(logging.Formatter(FORMAT))
    for name in RAY_LOGGERS:
        lg = logging.getLogger(name)
        for h in list(lg.handlers):
            if isinstance(h, logging.StreamHandler) and not isinstance(h, logging.FileHandler):
                lg.removeHandler(h)
        if not any(isinstance(h, type(handler)) and getattr(h, "baseFilename", None) == getattr(handler, "baseFilename", None)
                   for h in lg.handlers):
            lg.addHandler(handler)
        lg.propagate = False


def run_log_dir(stage_out: str, ledger_dir: str | None = None) -> str | None:
    """``RUN/logs`` for a local stage output under ``RUN`` (the folder holding ``ledger/`` or ``run.json``,
    else the output's parent); None for remote outputs."""
    if "://" in str(stage_out) and not str(stage_out).startswith("file://"):
        return None
    out = Path(str(stage_out).removeprefix("file://")).resolve()
    if ledger_dir and "://" not in str(ledger_dir):
        return str(Path(ledger_dir).resolve().parent / "logs")
    for parent in out.parents:
        if (parent / "run.json").exists() or (parent / "ledger").is_dir():
            return str(parent / "logs")
    return str(out.parent / "logs")


def bars_off(enabled: bool = True) -> bool:
    """Whether a bar is hidden: asked for, or TQDM_DISABLE set (``-q``, tests)."""
    return not enabled or os.environ.get("TQDM_DISABLE", "").lower() in ("1", "true", "yes")


class StageBar:
    """One bar per stage: tasks done of total, input rows so far, rows/s and the ETA."""

    def __init__(self, name: str, total_tasks: int, enabled: bool = True):
        self.bar = tqdm(total=total_tasks, desc=name, unit="task", disable=bars_off(enabled), leave=False,
                        bar_format="{desc}: {n_fmt}/{total_fmt} tasks |{bar}| {postfix} [{elapsed}<{remaining}]")
        self.rows, self.start = 0, time.perf_counter()

    def task_done(self, stats: dict) -> None:
        self.rows += int(stats.get("in", 0) or 0)
        rate = self.rows / max(time.perf_counter() - self.start, 1e-9)
        self.bar.set_postfix_str(f"{self.rows:,} rows, {rate:,.0f} rows/s", refresh=False)
        self.bar.update(1)

    def __enter__(self) -> "StageBar":
        return self

    def __exit__(self, *exc) -> None:
        self.bar.close()


class TrainBar:
    """The training bar: steps of total, loss and samples/s (rank 0 only)."""

    def __init__(self, total_steps: int, start: int = 0, enabled: bool = True):
        self.bar = tqdm(total=total_steps, initial=start, desc="train", unit="step", disable=bars_off(enabled),
                        leave=False)

    def step(self, n: int = 1, loss: float | None = None, samples_per_s: float | None = None) -> None:
        if loss is not None:
            self.bar.set_postfix_str(f"loss {loss:.4f}, {samples_per_s or 0:,.1f} samples/s", refresh=False)
        self.bar.update(n)

    def close(self) -> None:
        self.bar.close()
