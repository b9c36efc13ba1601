"""`wit overlap --shards DIR --eval NAME=PATH ... [--model CKPT] --out DIR`: CLIP §5 overlap analysis.

Hashes every training shard (webdataset tars from wit or any other tool, e.g. img2dataset), finds
each eval image's nearest training image by pHash and runs dedupe's copy detector (the eval images'
crop, rotation and centre rows, edge bands; `--index` takes dedupe's own eval index) on every training
image, splits each eval set into Overlap / Clean, and
writes report.json, report.md, report.html and plots under --out. With --model, zero-shot accuracy
on All / Clean / Overlap, the one-tailed binomial p-value and the 99.5% Clopper-Pearson interval.
"""

from __future__ import annotations

import argparse
import json
import sys


def register(sub: argparse._SubParsersAction) -> None:
    from wit.cli_args import add_runner_args
    from wit.overlap.detector import DEFAULT_THRESHOLD

    p = sub.add_parser("overlap", help="data-overlap analysis against eval sets (CLIP section 5)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--shards", nargs="+", required=True, help="training shard tars, folders or globs")
    p.add_argument("--eval", action="append", required=True, metavar="NAME=PATH",
                   help="an eval set (ImageFolder dir, .tar shards or Parquet with images); repeat per set")
    p.add_argument("--out", required=True, help="report folder")
    p.add_argument("--threshold", action="append", default=[], metavar="NAME=D",
                   help=f"pHash distance for one set (default {DEFAULT_THRESHOLD}, see docs/overlap.md)")
    p.add_argument("--default-threshold", type=int, default=DEFAULT_THRESHOLD, help="distance for sets not named")
    p.add_argument("--model", default=None, help="checkpoint for zero-shot accuracy (none: contamination only)")
    p.add_argument("--model-name", default="wit-vit-tiny", help="open_clip model name of --model")
    p.add_argument("--templates", default=None, help="prompt templates JSON (list, or {dataset: [templates]})")
    p.add_argument("--pairs", type=int, default=8, help="closest and borderline pairs per set in report.html")
    p.add_argument("--detector", default=None, metavar="CKPT",
                   help="learned copy detector, as `wit dedupe index --checkpoint` takes it (TorchScript from "
                        "`wit dedupe train-detector` or a user's ISC/SSCD export; open_clip with --detector-model): "
                        "an eval image is in Overlap when its pHash or its embedding says so")
    p.add_argument("--detector-model", default=None, help="open_clip model name of --detector")
    p.add_argument("--embed-threshold", type=float, default=None,
                   help="cosine for --detector (default: the checkpoint's calibrated one; open_clip 0.95)")
    p.add_argument("--index", default=None, metavar="DIR",
                   help="the eval index dedupe used (`wit dedupe index --out DIR`, or a run's dedupe/eval_index): "
                        "match training images against its rows (and, without --detector, with its learned detector), so the "
                        "overlap split and the dedupe agree; "
                        "default: build one from --eval with dedupe's default rows (and --turns / --warps)")
    p.add_argument("--turns", action="store_true",
                   help="(no --index) also index vflip/90/180/270-degree turns and rotations all round, as "
                        "`wit dedupe index --turns`")
    p.add_argument("--warps", action="store_true",
                   help="(no --index) also index large crops and shears, as `wit dedupe index --warps`")
    p.add_argument("--keypoints", action="store_true",
                   help="(no --index) also index ORB keypoints, as `wit dedupe index --keypoints`")
    p.add_argument("--shuffled", action="store_true",
                   help="(no --index) also index pixel-shuffled copies' colours, as `wit dedupe index --shuffled`")
    p.add_argument("--phash-only", action="store_true",
                   help="only the nearest pHash (and its mirror's): no variant rows, centre region or edge bands; "
                        "reads wit shards' pHash column without decoding (faster, misses crops and rotations)")
    p.add_argument("--rehash", action="store_true",
                   help="decode every training image even when the shard's Parquet has a phash column")
    add_runner_args(p)
    p.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    from wit.cli_args import parse_pairs
    from wit.overlap.job import OverlapJob, run_overlap

    job = OverlapJob(
        shards=args.shards, eval_sets=parse_pairs(args.eval, "--eval"), out=args.out,
        thresholds=parse_pairs(args.threshold, "--threshold", int), default_threshold=args.default_threshold,
        model=args.model, model_name=args.model_name if args.model else None, templates=args.templates,
        use_sidecar=not args.rehash, pairs=args.pairs, detector=args.detector, detector_model=args.detector_model,
        embed_threshold=args.embed_threshold, variant_rows=not args.phash_only, index_dir=args.index,
        turns=args.turns, warps=args.warps, keypoints=args.keypoints, shuffled=args.shuffled,
    )
    if args.phash_only and (args.index or args.turns or args.warps or args.keypoints or args.shuffled):
        print("wit overlap: --phash-only leaves out the copy detector; drop --index / --turns / --warps / --keypoints / --shuffled",
              file=sys.stderr)
        return 2
    summary = run_overlap(job, runner=args.runner, address=args.address, workers=args.workers, progress=args.progress)
    print(json.dumps(summary, indent=2))
    return 0
