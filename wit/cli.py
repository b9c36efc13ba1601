"""The `wit` command: one sub-command per stage, plus run, demo and ledger.

Each stage package owns its sub-command in ``wit/<package>/command.py`` with a
``register(subparsers)`` function; this module only assembles them, so ``wit --help`` stays
fast (heavy imports happen inside the handlers).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from wit import __version__

# (command, module holding register(), one-line help)
COMMANDS: list[tuple[str, str, str]] = [
    ("world", "wit.world.command", "generate the synthetic mini-web (and serve it)"),
    ("queries", "wit.queries.command", "build the query list from Wikipedia, pageviews and WordNet"),
    ("candidates", "wit.candidates.command", "extract (image URL, alt text) candidates from WAT/WARC/URL lists"),
    ("match", "wit.match.command", "substring-match candidates against the queries (MetaCLIP semantics)"),
    ("balance", "wit.balance.command", "balance matched pairs with a per-query cap t (MetaCLIP Algorithm 1)"),
    ("download", "wit.download.command", "download images with img2dataset (politeness, opt-outs, retries)"),
    ("filter", "wit.filter.command", "filter downloaded images (decode, size, aspect, caption, model hooks)"),
    ("dedupe", "wit.dedupe.command", "index eval sets and drop their copies and in-set near-duplicates"),
    ("shard", "wit.shard.command", "write webdataset tar + Parquet shards"),
    ("train", "wit.train.command", "train a CLIP model straight from the shards"),
    ("overlap", "wit.overlap.command", "data-overlap analysis against eval sets (CLIP section 5)"),
    ("run", "wit.pipeline", "run the steps a pipeline spec lists, in order"),
    ("demo", "wit.demo", "the whole pipeline end to end on the generated mini-web"),
    ("ledger", "wit.io.ledger_command", "inspect and reconcile a run's ledger"),
]


def add_runner_args(p: argparse.ArgumentParser) -> None:
    """The options every stage command takes."""
    g = p.add_argument_group("execution")
    g.add_argument("--runner", choices=["local", "ray"], default="local",
                   help="local: in this process; ray: Ray Data actors (local Ray unless --address)")
    g.add_argument("--address", default=None, help="Ray cluster address (e.g. ray://head:10001 or auto)")
    g.add_argument("--workers", type=int, default=None, help="parallel workers (default: one per CPU)")
    g.add_argument("--no-progress", dest="progress", action="store_false", help="hide progress bars")


def add_ledger_arg(p: argparse.ArgumentParser) -> None:
    """``--ledger DIR`` of the stage commands; ``ledger_dir`` resolves its default."""
    p.add_argument("--ledger", default=None, help="ledger folder (default: OUT/../ledger)")


def ledger_dir(args: argparse.Namespace) -> str:
    """The ledger folder: ``--ledger``, else ``ledger`` beside the ``--out`` folder."""
    from wit.io import folders

    out = args.out.rstrip("/")
    return args.ledger or folders.join(out.rpartition("/")[0] or ".", "ledger")


def _not_built(name: str, help_: str):
    def register(sub: argparse._SubParsersAction) -> None:
        p = sub.add_parser(name, help=f"{help_} [not built yet]", description=help_)
        add_runner_args(p)
        p.set_defaults(func=lambda args: _fail(f"`wit {name}` is not built yet in this version of wit"))
        p.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)

    return register


def _fail(msg: str) -> int:
    print(f"wit: error: {msg}", file=sys.stderr)
    return 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="wit",
        description="Build CLIP-style web-scale image-text datasets (the WIT recipe) and prove what is in them.",
        epilog="Each command has its own --help. Start with `wit demo --out runs/demo`.",
    )
    parser.add_argument("--version", action="version", version=f"wit {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    parser.add_argument("-q", "--quiet", action="store_true", help="errors only: no progress bars, no warnings")
    parser.add_argument("--log-file", default=None, metavar="PATH",
                        help="also write every INFO line (DEBUG with -vv) to PATH")
    parser.add_argument("--storage-option", action="append", default=[], metavar="[PROTOCOL.]KEY=VALUE",
                        help="fsspec option for remote paths, e.g. anon=true (public s3 bucket), "
                             "s3.endpoint_url=http://127.0.0.1:9000, gcs.token=anon")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module, help_ in COMMANDS:
        try:
            register = importlib.import_module(module).register
        except ModuleNotFoundError as err:
            if err.name and (err.name == module or module.startswith(err.name + ".") or err.name.startswith(module)):
                register = _not_built(name, help_)
            else:
                raise
        register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from wit import console

    console.setup_logging(args.verbose, args.quiet, args.log_file)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from wit.config import ConfigError
    from wit.io import storage

    try:
        storage.apply(storage.parse(args.storage_option))
        return int(args.func(args) or 0)
    except (ConfigError, FileNotFoundError, PermissionError, ValueError) as err:
        return _fail(storage.credentials_message(err) or str(err))
    except KeyboardInterrupt:
        return _fail("interrupted; rerun the same command to resume")
    except Exception as err:
        msg = storage.credentials_message(err)
        if msg is None:
            raise
        return _fail(msg)


if __name__ == "__main__":
    sys.exit(main())
