"""What every `wit` sub-command shares: runner options, the ledger folder, KEY=VALUE parsing, config sections.

Each ``command.py`` imports these from here; ``wit/cli.py`` only assembles the commands.
"""

from __future__ import annotations

import argparse
import os
from typing import Any, Callable

from wit.config import ConfigError


def add_runner_args(p: argparse.ArgumentParser) -> None:
    """The options every stage command takes."""
    from wit.runners import RUNNERS

    g = p.add_argument_group("execution")
    g.add_argument("--runner", choices=sorted(RUNNERS), default="local",
                   help="local: in this process; ray: Ray Data actors (local Ray unless --address)")
    g.add_argument("--address", default=None, help="Ray cluster address (e.g. ray://head:10001 or auto)")
    g.add_argument("--workers", type=int, default=None, help="parallel workers (default: one per CPU)")
    g.add_argument("--no-progress", dest="progress", action="store_false", help="hide progress bars")
    g.add_argument("--object-store-memory", default=None, metavar="SIZE",
                   help="ray: object store per node when wit starts Ray, e.g. 4GB (default: Ray's, 30%% of RAM)")
    g.add_argument("--spill-dir", default=None, metavar="DIR",
                   help="ray: where a local Ray spills objects under memory pressure (default /tmp/ray)")


def apply_ray_flags(args: argparse.Namespace) -> None:
    """``--object-store-memory`` / ``--spill-dir`` into this process's Ray settings (``wit.runners.settings``);
    `wit run` folds them into its spec's ``ray:`` section instead."""
    from wit.config import RayConfig, load_model
    from wit.runners import settings

    store, spill = getattr(args, "object_store_memory", None), getattr(args, "spill_dir", None)
    if store is not None or spill is not None:
        cfg = load_model(RayConfig, {"object_store_memory": store, "spill_dir": spill}, "--object-store-memory")
        settings.configure(object_store_memory=cfg.object_store_memory, spill_dir=cfg.spill_dir)


def runner_kwargs(args: argparse.Namespace, ledger: str | None = None) -> dict:
    """The keyword arguments ``run_stage`` takes, from the runner options (and a ledger folder)."""
    return dict(runner=args.runner, address=args.address, workers=args.workers, progress=args.progress,
                ledger_dir=ledger)


def add_ledger_arg(p: argparse.ArgumentParser) -> None:
    """``--ledger DIR`` of the stage commands; ``ledger_dir`` resolves its default."""
    p.add_argument("--ledger", default=None, help="ledger folder (default: OUT/../ledger)")


def ledger_dir(args: argparse.Namespace) -> str:
    """The ledger folder: ``--ledger``, else ``ledger`` beside the ``--out`` folder."""
    from wit.io import folders

    out = args.out.rstrip("/")
    return args.ledger or folders.join(out.rpartition("/")[0] or ".", "ledger")


def parse_pairs(items: list[str], flag: str, cast: Callable[[str], Any] = str, *,
                existing_path: bool = False) -> dict[str, Any]:
    """``NAME=VALUE`` items of a repeatable flag -> ``{NAME: cast(VALUE)}``; a bad item names the flag."""
    out: dict[str, Any] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name or not value:
            raise ConfigError(f"{flag} wants NAME=VALUE, got {item!r}")
        if existing_path and not os.path.exists(value):
            raise ConfigError(f"{flag} {item!r}: no such file or folder {value!r}")
        try:
            out[name] = cast(value)
        except ValueError:
            raise ConfigError(f"{flag} {item!r}: {value!r} is not a valid value") from None
    return out


def parse_sets(items: list[str], flag: str = "--set") -> dict[str, Any]:
    """``KEY=VALUE`` overrides with YAML value syntax (``--set balance.t=100``) -> ``{KEY: value}``."""
    import yaml

    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"{flag} wants KEY=VALUE, got {item!r}")
        try:
            out[key] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise ConfigError(f"{flag} {item!r}: {value!r} is not a YAML value") from None
    return out


def load_section(model, config: str | None, section: str, sets: list[str]):
    """A stage config from an optional YAML file's ``section`` plus ``--set KEY=VALUE`` overrides."""
    import yaml

    from wit.config import load_model

    data = {}
    if config:
        try:
            with open(config) as f:
                doc = yaml.safe_load(f) or {}
        except FileNotFoundError:
            raise ConfigError(f"--config: no such file {config!r}") from None
        except yaml.YAMLError as err:
            raise ConfigError(f"--config {config}: not valid YAML: {err}") from None
        data = dict(doc.get(section, doc) or {})
    for key, value in parse_sets(sets).items():
        data[key.removeprefix(section + ".")] = value
    return load_model(model, data, config or "--set")
