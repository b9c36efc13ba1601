"""The `wit` command: one sub-command per stage, plus run, demo and ledger.

Each stage package owns its sub-command in ``wit/<package>/command.py`` with a
``register(subparsers)`` function; this module only assembles them, so ``wit --help`` stays
fast (heavy imports happen inside the handlers).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from wit import __version__


def commands() -> list[tuple[str, str, str]]:
    """(command, module holding register(), one-line help): the graph's steps that have one, then the rest."""
    from wit import graph

    steps = [(s.name, s.command, s.help) for s in graph.STEPS if s.command]
    return steps + [
        ("run", "wit.pipeline", "run the steps a pipeline spec lists, in order"),
        ("demo", "wit.demo", "the whole pipeline end to end on the generated mini-web"),
        ("ledger", "wit.io.ledger_command", "inspect and reconcile a run's ledger"),
    ]


def _not_built(name: str, help_: str):
    from wit.cli_args import add_runner_args

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
    parser.add_argument("--debug", action="store_true", default=os.environ.get("WIT_DEBUG", "") not in ("", "0"),
                        help="show the traceback of an error (also WIT_DEBUG=1)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module, help_ in commands():
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
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv  # accepted after the sub-command too
    parser = build_parser()
    args = parser.parse_args([a for a in argv if a != "--debug"])
    args.debug = args.debug or debug
    from wit import console

    console.setup_logging(args.verbose, args.quiet, args.log_file)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from wit.cli_args import apply_ray_flags
    from wit.errors import UserError
    from wit.io import storage

    try:
        storage.apply(storage.parse(args.storage_option))
        apply_ray_flags(args)
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return _fail("interrupted; rerun the same command to resume")
    except (UserError, FileNotFoundError, PermissionError, ValueError) as err:
        if args.debug:
            raise
        return _fail(storage.credentials_message(err) or _one_line(err))
    except Exception as err:
        msg = storage.credentials_message(err)
        if msg is None or args.debug:
            raise
        return _fail(msg)


def _one_line(err: BaseException) -> str:
    """The user's error as one line: the message's first line, the file a missing-file error names."""
    if isinstance(err, FileNotFoundError) and err.filename:
        return f"no such file or folder: {err.filename}"
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    if not lines:
        return type(err).__name__
    return " ".join([lines[0], "; ".join(lines[1:])]).strip()


if __name__ == "__main__":
    sys.exit(main())
