"""`wit candidates extract --input PATH_OR_GLOB... --format wat|warc|parquet|csv --out DIR`."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    from wit.cli_args import add_ledger_arg, add_runner_args

    p = sub.add_parser("candidates", help="extract (image URL, alt text) candidates from WAT/WARC/URL lists",
                       description=__doc__)
    csub = p.add_subparsers(dest="candidates_command", metavar="ACTION", required=True)
    e = csub.add_parser("extract", help="extract candidate pairs, one task per input file", description=__doc__)
    e.add_argument("--input", nargs="+", required=True, help="files, folders or globs (one task per file)")
    e.add_argument("--format", choices=["wat", "warc", "parquet", "csv"], required=True)
    e.add_argument("--out", required=True, help="output folder of part-NNNNN.parquet (rerun to resume)")
    e.add_argument("--url-col", default="url", help="URL column of parquet/csv lists")
    e.add_argument("--text-col", default="text", help="caption column of parquet/csv lists")
    e.add_argument("--page-url-col", default=None, help="page URL column of parquet/csv lists (optional)")
    e.add_argument("--max-text-chars", type=int, default=1000, help="longer alt texts are dropped")
    e.add_argument("--source", default=None, help="value of the source column (default: the format)")
    add_ledger_arg(e)
    add_runner_args(e)
    e.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    from wit.candidates.job import extract
    from wit.cli_args import ledger_dir, runner_kwargs
    from wit.config import CandidatesConfig

    cfg = CandidatesConfig(format=args.format, url_col=args.url_col, text_col=args.text_col,
                           page_url_col=args.page_url_col, max_text_chars=args.max_text_chars, source=args.source)
    report = extract(cfg, args.input, args.out.rstrip("/"), **runner_kwargs(args, ledger_dir(args)))
    print(json.dumps(report, indent=2))
    return 0
