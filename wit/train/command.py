"""`wit train`: train a CLIP model straight from webdataset shards, then evaluate it zero-shot."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    from wit.cli_args import add_runner_args
    from wit.config import TrainConfig

    d = TrainConfig()
    p = sub.add_parser("train", help="train a CLIP model straight from the shards", description=__doc__)
    p.add_argument("--shards", required=True, help="folder of NNNNN.tar webdataset shards (or one tar)")
    p.add_argument("--out", required=True, help="output folder: checkpoints/, metrics.jsonl, zeroshot.json, loss.png")
    p.add_argument("--model", default=d.model, help=f"open_clip model name (default {d.model}; also wit-vit-micro, "
                   "wit-vit-small, ViT-B-32, ...)")
    p.add_argument("--pretrained", default=d.pretrained, help="local open_clip checkpoint to start from")
    p.add_argument("--steps", type=int, default=d.steps)
    p.add_argument("--batch-size", type=int, default=d.batch_size, help="per worker")
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--warmup", type=int, default=d.warmup)
    p.add_argument("--weight-decay", type=float, default=d.weight_decay)
    p.add_argument("--loader-workers", type=int, default=d.workers, help="data loader processes per trainer")
    p.add_argument("--device", choices=["auto", "cpu", "cuda"], default=d.device)
    p.add_argument("--precision", choices=["auto", "fp32", "bf16", "fp16"], default=d.precision)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoints/epoch_latest.pt")
    p.add_argument("--eval", action="append", default=[], metavar="NAME=DIR", help="ImageFolder eval set (repeatable)")
    p.add_argument("--templates", default=None, help="zero-shot templates JSON (e.g. ../shared/data/eval_meta/"
                   "en_zeroshot_classification_templates.json; picked by eval set NAME)")
    add_runner_args(p)
    p.set_defaults(func=_main)


def _main(args: argparse.Namespace) -> int:
    from wit.cli_args import parse_pairs
    from wit.train.data import list_shards
    from wit.train.job import train
    from wit.train.loop import TrainJob

    job = TrainJob(
        tuple(list_shards(args.shards)), args.out, model=args.model, steps=args.steps, batch_size=args.batch_size,
        lr=args.lr, warmup=args.warmup, weight_decay=args.weight_decay, loader_workers=args.loader_workers,
        seed=args.seed, pretrained=args.pretrained, resume=args.resume, device=args.device,
        precision=args.precision, eval_sets=parse_pairs(args.eval, "--eval"), templates=args.templates,
    )
    # --runner ray trains on Ray Train with --workers workers (default 2); local trains in this process.
    ray_workers = (args.workers or 2) if args.runner == "ray" else 0
    summary = train(job, ray_workers=ray_workers, address=args.address)
    print(json.dumps(summary, indent=2, default=str))
    return 0
