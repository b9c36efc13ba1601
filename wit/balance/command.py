"""`wit balance --matched DIR --t 20000 [--oversample 1.0] [--mode metaclip|hardcap] [--seed N]
[--counts PATH | --recount] --out DIR`."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    from wit.cli_args import add_ledger_arg, add_runner_args

    p = sub.add_parser("balance", help="balance matched pairs with a per-query cap t (MetaCLIP Algorithm 1)",
                       description=__doc__)
    p.add_argument("--matched", required=True, help="matched folder (part-*.parquet + entry_counts.parquet)")
    p.add_argument("--out", required=True, help="output folder; also gets balance_stats.json and a curve PNG")
    p.add_argument("--t", type=int, default=20_000, help="per-entry cap (MetaCLIP: 20,000)")
    p.add_argument("--oversample", type=float, default=1.0, help="cap factor for the pass before download")
    p.add_argument("--mode", choices=["metaclip", "hardcap"], default="metaclip")
    p.add_argument("--seed", type=int, default=0)
    counts = p.add_mutually_exclusive_group()
    counts.add_argument("--counts", default=None, metavar="PATH",
                        help="entry counts to use (default: MATCHED/entry_counts.parquet); for the final pass "
                             "over deduped rows give the pool's matched/entry_counts.parquet: Algorithm 1 over the pool")
    counts.add_argument("--recount", action="store_true",
                        help="recompute entry counts over the input rows; after download this is not Algorithm 1")
    p.add_argument("--name", default=None,
                   help="ledger stage name (default: balance, or balance_final with --counts or --recount)")
    add_ledger_arg(p)
    add_runner_args(p)
    p.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    from wit.cli_args import ledger_dir as cli_ledger_dir
    from wit.balance.job import balance_folder
    from wit.io import folders
    from wit.match.job import ENTRY_COUNTS_FILE

    if args.t < 1 or args.oversample <= 0:
        raise ValueError("balance: --t must be >= 1 and --oversample > 0")
    out = args.out.rstrip("/")
    ledger_dir = cli_ledger_dir(args)
    counts = None if args.recount else args.counts or folders.join(args.matched.rstrip("/"), ENTRY_COUNTS_FILE)
    name = args.name or ("balance_final" if args.recount or args.counts else "balance")
    report = balance_folder(args.matched, out, t=args.t, oversample=args.oversample, mode=args.mode, seed=args.seed,
                            name=name, counts_url=counts, runner=args.runner, address=args.address,
                            workers=args.workers, progress=args.progress, ledger_dir=ledger_dir)
    print(json.dumps(report, indent=2))
    return 0
