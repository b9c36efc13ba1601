"""`wit dedupe index --eval NAME=PATH ... --out INDEX` and `wit dedupe --index INDEX --input DIR --out DIR`.

`wit dedupe train-detector --images DIR --out CKPT` trains the learned copy descriptor (TorchScript);
`wit dedupe calibrate-detector --checkpoint CKPT --images DIR --distractors DIR --out CKPT2` sets a
checkpoint's cosine threshold to a target false-positive rate; `--checkpoint CKPT` without `--model`
then uses it in `wit dedupe index`."""

from __future__ import annotations

import argparse
import json
import sys


def register(sub: argparse._SubParsersAction) -> None:
    from wit.cli_args import add_ledger_arg, add_runner_args

    p = sub.add_parser("dedupe", help="index eval sets and drop their copies and in-set near-duplicates",
                       description=__doc__ + "\n\nThe first form builds the index; the second drops duplicates.",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("action", nargs="?", choices=["index", "train-detector", "calibrate-detector"],
                   help="`index`: build an eval index; `train-detector` / `calibrate-detector`: the learned copy descriptor")
    p.add_argument("--eval", action="append", default=[], metavar="NAME=PATH",
                   help="(index) an eval set: ImageFolder dir, webdataset .tar dir/file, or Parquet with image bytes")
    p.add_argument("--model", default=None, help="(index) open_clip model name for embeddings, e.g. ViT-B-32")
    p.add_argument("--checkpoint", default=None,
                   help="(index) local checkpoint: TorchScript copy descriptor, or open_clip with --model; "
                        "without it the embedding path is off (nothing is downloaded)")
    p.add_argument("--embed-threshold", type=float, default=None,
                   help="(index) cosine at or above which a candidate is an eval copy (stored in the index); "
                        "default: the checkpoint's calibrated one, 0.95 for open_clip")
    p.add_argument("--turns", action="store_true",
                   help="(index) also index vflip/90/180/270-degree turns and rotations all round (every "
                        "4 degrees, framed to the corner-free rectangle) of each image")
    p.add_argument("--warps", action="store_true",
                   help="(index) also index large crops (half of each side, 9 places) and shears (factors "
                        "0.2-0.7 both ways, both axes) of each image")
    p.add_argument("--keypoints", action="store_true",
                   help="(index) also store each image's ORB keypoints: copies that show only part of an eval "
                        "image or show it inside another picture (pasted on a background or a screenshot, "
                        "overlaid, striped, warped) are then matched by keypoints and a homography; every "
                        "downloaded image is decoded for it (~12 ms an image against 125 eval images)")
    p.add_argument("--shuffled", action="store_true",
                   help="(index) also store the colour histogram of each image's pixel-shuffled copy (as "
                        "download would store it): a downloaded image whose pixels look permuted is matched by "
                        "its colours; every downloaded image is decoded for it")
    p.add_argument("--images", default=None, help="(train-/calibrate-detector) photos to train on / eval-like references")
    p.add_argument("--distractors", default=None,
                   help="(train-/calibrate-detector) photos that are no copies, for the threshold")
    p.add_argument("--target-fpr", type=float, default=0.001, help="(train-/calibrate-detector) false-positive rate")
    p.add_argument("--steps", type=int, default=None, help="(train-detector) training steps (default 2000: ~8 minutes on 2 CPU cores)")
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

    if args.action in ("train-detector", "calibrate-detector"):
        return _detector(args)
    if args.action == "index":
        if not args.eval:
            print("wit dedupe index: give at least one --eval NAME=PATH", file=sys.stderr)
            return 2
        index = build_index_cli(args.eval, args.out, model=args.model, checkpoint=args.checkpoint,
                                embed_threshold=args.embed_threshold, dihedral_variants=args.turns,
                                warp_variants=args.warps, keypoints=args.keypoints,
                                shuffled=args.shuffled)
        print(json.dumps({"images": index.n_images, "rows": len(index), "rows_per_image": index.rows_per_image(),
                          "sets": sorted(set(index.sets.tolist())),
                          "embeddings": index.model or "off (no --checkpoint)",
                          "keypoints": len(index.keypoints) if index.keypoints is not None else "off (no --keypoints)",
                          "shuffled": len(index.shuffled) if index.shuffled is not None else "off (no --shuffled)",
                          "out": args.out}))
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


def _detector(args: argparse.Namespace) -> int:
    from dataclasses import asdict, replace

    from wit.dedupe.train_detector import TrainDetectorConfig, calibrate_checkpoint, train_detector

    name = f"wit dedupe {args.action}"
    if not args.images:
        print(f"{name}: --images DIR is required", file=sys.stderr)
        return 2
    if not 0 < args.target_fpr < 1:
        print(f"{name}: --target-fpr must be in (0, 1)", file=sys.stderr)
        return 2
    if args.action == "train-detector":
        cfg = replace(TrainDetectorConfig(), target_fpr=args.target_fpr,
                      **({"steps": args.steps} if args.steps else {}))
        rep = train_detector(args.images, args.out, cfg, distractors_dir=args.distractors)
        print(json.dumps(asdict(rep)))
        return 0
    if not args.checkpoint or not args.distractors:
        print(f"{name}: --checkpoint CKPT and --distractors DIR are required", file=sys.stderr)
        return 2
    print(json.dumps(calibrate_checkpoint(args.checkpoint, args.images, args.distractors, args.out, args.target_fpr)))
    return 0
