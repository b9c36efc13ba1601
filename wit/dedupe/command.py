"""`wit dedupe index --eval NAME=PATH ... --out INDEX` and `wit dedupe --index INDEX --input DIR --out DIR`."""

from __future__ import annotations

import argparse
import json
import sys


def register(sub: argparse._SubParsersAction) -> None:
    from wit.cli_args import add_ledger_arg, add_runner_args

    p = sub.add_parser("dedupe", help="index eval sets and drop their copies and in-set near-duplicates",
                       description=__doc__ + "\n\nThe first form builds the index; the second drops duplicates.",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("action", nargs="?", choices=["index"], help="`index`: build an eval index")
    p.add_argument("--eval", action="append", default=[], metavar="NAME=PATH",
                   help="(index) an eval set: ImageFolder dir, webdataset .tar dir/file, or Parquet with image bytes")
    p.add_argument("--model", default=None, help="(index) open_clip model name for embeddings, e.g. ViT-B-32")
    p.add_argument("--checkpoint", default=None,
                   help="(index) local open_clip checkpoint; without it the embedding path is off (nothing is downloaded)")
    p.add_argument("--embed-threshold", type=float, default=0.95,
                   help="(index) cosine at or above which a candidate is an eval copy (stored in the index)")
    p.add_argument("--index", default=None, help="(dedupe) eval index dir; without it only in-set duplicates go")
    p.add_argument("--input", default=None, help="(dedupe) filtered Parquet parts")
    p.add_argument("--out", required=True, help="index dir (index) or output folder (dedupe)")
    add_ledger_arg(p)
    p.add_argument("--config", default=None, help="YAML with a `dedupe:` section (DedupeConfig)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="e.g. --set phash_threshold=8")
    add_runner_args(p)
    p.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    from wit.cli_args import ledger_dir as cli_ledger_dir
    from wit.config import DedupeConfig
    from wit.dedupe.index import build_index_cli
    from wit.dedupe.job import run_dedupe
    from wit.cli_args import load_section
    from wit.io import folders

    if args.action == "index":
        if not args.eval:
            print("wit dedupe index: give at least one --eval NAME=PATH", file=sys.stderr)
            return 2
        if args.checkpoint and not args.model:
            print("wit dedupe index: --checkpoint needs --model NAME", file=sys.stderr)
            return 2
        index = build_index_cli(args.eval, args.out, model=args.model, checkpoint=args.checkpoint,
                                embed_threshold=args.embed_threshold)
        print(json.dumps({"images": index.n_images, "rows": len(index), "rows_per_image": index.rows_per_image(),
                          "sets": sorted(set(index.sets.tolist())),
                          "embeddings": index.model or "off (no --checkpoint)", "out": args.out}))
        return 0
    if not args.input:
        print("wit dedupe: --input is required (or use `wit dedupe index`)", file=sys.stderr)
        return 2
    cfg = load_section(DedupeConfig, args.config, "dedupe", args.set)
    out = args.out.rstrip("/")
    ledger_dir = cli_ledger_dir(args)
    rep = run_dedupe(folders.expand(args.input, (".parquet",)), out, args.index, cfg, runner=args.runner,
                     address=args.address, workers=args.workers, progress=args.progress, ledger_dir=ledger_dir)
    print(json.dumps(rep, indent=2))
    return 0
