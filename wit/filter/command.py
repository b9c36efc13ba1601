"""`wit filter --input DIR --out DIR`: drop undecodable, tiny, extreme or badly captioned samples."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    from wit.cli import add_ledger_arg, add_runner_args

    p = sub.add_parser("filter", help="filter downloaded images (decode, size, aspect, caption, model hooks)",
                       description=__doc__)
    p.add_argument("--input", required=True, help="downloaded Parquet parts")
    p.add_argument("--out", required=True)
    add_ledger_arg(p)
    p.add_argument("--config", default=None, help="YAML with a `filter:` section (FilterConfig)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="e.g. --set min_side=64")
    add_runner_args(p)
    p.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    from wit.cli import ledger_dir as cli_ledger_dir
    from wit.config import FilterConfig
    from wit.download.command import load_section
    from wit.filter.hooks import Hooks
    from wit.filter.stage import FilterStage
    from wit.io import folders
    from wit.runners import run_stage

    cfg = load_section(FilterConfig, args.config, "filter", args.set)
    out = args.out.rstrip("/")
    ledger_dir = cli_ledger_dir(args)
    if not cfg.clip_model:
        for line in Hooks(cfg).status():
            print(f"wit filter: {line}")
    report = run_stage(FilterStage(cfg=cfg), folders.expand(args.input, (".parquet",)), out, runner=args.runner,
                       address=args.address, workers=args.workers, progress=args.progress, ledger_dir=ledger_dir)
    print(json.dumps(report.as_dict(), indent=2))
    return 0
