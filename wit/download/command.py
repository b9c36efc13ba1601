"""`wit download --urls DIR --out DIR`: fetch, resize and store the images of a URL list."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    from wit.cli_args import add_ledger_arg, add_runner_args

    p = sub.add_parser("download", help="download images (politeness, opt-outs, retries)", description=__doc__)
    p.add_argument("--urls", required=True, help="folder/glob of balanced Parquet parts (uid, url, text, ...)")
    p.add_argument("--out", required=True, help="output folder (rerun to resume)")
    add_ledger_arg(p)
    p.add_argument("--config", default=None, help="YAML with a `download:` section (DownloadConfig)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a DownloadConfig field, e.g. --set image_size=384")
    p.add_argument("--retry-failed", action="store_true",
                   help="re-attempt only URLs whose first pass ended timeout/connection_error/http_500/truncated")
    p.add_argument("--retry-out", default=None, help="retry output folder (default: OUT-retry)")
    add_runner_args(p)
    p.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    from wit.cli_args import ledger_dir as cli_ledger_dir
    from wit.cli_args import load_section
    from wit.config import DownloadConfig
    from wit.download.retry import RETRY_STAGE, retry_inputs
    from wit.download.stage import DownloadStage
    from wit.download.job import run_download
    from wit.io import folders

    cfg = load_section(DownloadConfig, args.config, "download", args.set)
    out = args.out.rstrip("/")
    ledger_dir = cli_ledger_dir(args)
    inputs = folders.expand(args.urls, (".parquet",))
    kw = dict(runner=args.runner, address=args.address, workers=args.workers, progress=args.progress,
              ledger_dir=ledger_dir)
    if args.retry_failed:
        retry_out = args.retry_out or out + "-retry"
        report = run_download(DownloadStage(cfg=cfg, name=RETRY_STAGE),
                              retry_inputs(inputs, ledger_dir, retry_out), retry_out, **kw)
    else:
        report = run_download(DownloadStage(cfg=cfg), inputs, out, **kw)
    print(json.dumps(report, indent=2))
    return 0
