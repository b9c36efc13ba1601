"""`wit filter --input DIR --out DIR`: drop undecodable, tiny, extreme or badly captioned samples."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    from wit.cli_args import add_ledger_arg, add_runner_args

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
    from wit.cli_args import ledger_dir, load_section, runner_kwargs
    from wit.config import FilterConfig
    from wit.filter.job import hook_status, run_filter
    from wit.io import folders

    cfg = load_section(FilterConfig, args.config, "filter", args.set)
    if not cfg.clip_model:
        for line in hook_status(cfg):
            print(f"wit filter: {line}")
    report = run_filter(cfg, folders.expand(args.input, (".parquet",)), args.out.rstrip("/"),
                        **runner_kwargs(args, ledger_dir(args)))
    report.pop("hooks")
    print(json.dumps(report, indent=2))
    return 0
