"""`wit match --queries QUERIES.parquet --candidates DIR --out DIR`: substring-match candidates."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    from wit.cli_args import add_ledger_arg, add_runner_args

    p = sub.add_parser("match", help="substring-match candidates against the queries (MetaCLIP semantics)",
                       description=__doc__)
    p.add_argument("--queries", required=True, help="queries.parquet (query_id, query, ...)")
    p.add_argument("--candidates", required=True, help="candidates folder (part-*.parquet)")
    p.add_argument("--out", required=True, help="output folder; also gets entry_counts.parquet")
    p.add_argument("--backend", choices=["tokens", "ahocorasick_rs", "pyahocorasick"], default="tokens",
                   help="matching engine: word-level trie over the spaced text (default, fastest) or an "
                        "Aho-Corasick library; all give identical output")
    add_ledger_arg(p)
    add_runner_args(p)
    p.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    from wit.cli_args import ledger_dir as cli_ledger_dir
    from wit.match.job import match_folder

    out = args.out.rstrip("/")
    ledger_dir = cli_ledger_dir(args)
    report = match_folder(args.queries, args.candidates, out, backend=args.backend, runner=args.runner,
                          address=args.address, workers=args.workers, progress=args.progress, ledger_dir=ledger_dir)
    print(json.dumps(report, indent=2))
    return 0
