"""`wit shard --input DIR --out DIR`: webdataset tars + one Parquet per tar + _stats.json."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    from wit.cli_args import add_ledger_arg, add_runner_args

    p = sub.add_parser("shard", help="write webdataset tar + Parquet shards", description=__doc__)
    p.add_argument("--input", required=True, help="final (balanced) Parquet parts")
    p.add_argument("--out", required=True, help="shard folder (rerun to resume)")
    p.add_argument("--samples-per-shard", type=int, default=None, help="default: ShardConfig (1000)")
    add_ledger_arg(p)
    add_runner_args(p)
    p.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    from wit.cli_args import ledger_dir as cli_ledger_dir
    from wit.config import ShardConfig
    from wit.io import folders
    from wit.shard.job import write_shards

    n = args.samples_per_shard or ShardConfig().samples_per_shard
    if n < 1:
        raise ValueError("--samples-per-shard must be >= 1")
    out = args.out.rstrip("/")
    ledger_dir = cli_ledger_dir(args)
    rep = write_shards(folders.expand(args.input, (".parquet",)), out, n, runner=args.runner, address=args.address,
                       workers=args.workers, progress=args.progress, ledger_dir=ledger_dir)
    print(json.dumps(rep, indent=2))
    return 0
