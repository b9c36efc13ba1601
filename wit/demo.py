"""`wit demo --out RUN`: the whole pipeline end to end on the generated mini-web.

It generates the mini-web, starts its loopback server, and runs pipelines/demo.yaml on the ray
runner (local Ray): queries -> candidates -> match -> balance -> download -> filter -> dedupe ->
final balance -> shards -> train -> zero-shot eval -> overlap report. A rerun resumes.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from wit.config import RunSpec, load_yaml

DEMO_SPEC = Path(__file__).resolve().parents[1] / "pipelines" / "demo.yaml"


def register(sub: argparse._SubParsersAction) -> None:
    from wit.cli_args import add_runner_args

    p = sub.add_parser("demo", help="the whole pipeline end to end on the generated mini-web",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="runs/demo", help="run directory (default: runs/demo)")
    p.add_argument("--size", choices=["tiny", "small"], default="tiny", help="mini-web size (default: tiny)")
    p.add_argument("--seed", type=int, default=0, help="seed of the mini-web and of every coin flip")
    p.add_argument("--spec", default=str(DEMO_SPEC), help="pipeline spec (default: pipelines/demo.yaml)")
    p.add_argument("--train-steps", type=int, default=None, help="override the demo's training steps")
    add_runner_args(p)
    p.set_defaults(func=_main, runner="ray")


def headline(record: dict) -> dict:
    """The numbers the demo ends with: pairs per stage, zero-shot accuracy, contamination."""
    stages = record.get("stages", {})
    pairs = {name: s.get("kept") for name, s in stages.items() if isinstance(s, dict) and "kept" in s}
    return {
        "pairs_per_stage": pairs,
        "zeroshot_top1": stages.get("train", {}).get("zeroshot_top1"),
        "contamination": stages.get("overlap", {}).get("contamination"),
        "ledger_ok": record.get("ledger_ok"),
    }


def _main(args: argparse.Namespace) -> int:
    from wit.pipeline import RunContext, run_pipeline

    overrides = {"world.size": args.size, "world.seed": args.seed, "seed": args.seed}
    if args.train_steps:
        overrides["train.steps"] = args.train_steps
    spec: RunSpec = load_yaml(args.spec, RunSpec, overrides)
    ctx = RunContext(spec, args.out, runner=args.runner, address=args.address, workers=args.workers,
                     progress=args.progress)
    record = run_pipeline(ctx)
    out = Path(args.out)
    h = headline(record)
    lines = [
        "",
        f"wit demo finished: {out}",
        f"  shards:    {out / 'shards'}",
        f"  report:    {out / 'overlap' / 'report.html'}",
        f"  training:  {out / 'train'}",
        f"  notebooks: notebooks/audit.ipynb (WIT_RUN={out})",
        "  pairs per stage: " + ", ".join(f"{k}={v}" for k, v in h["pairs_per_stage"].items()),
        f"  zero-shot top-1: {json.dumps(h['zeroshot_top1'])}",
        f"  contamination:   {json.dumps(h['contamination'])}",
        f"  ledger reconciles: {h['ledger_ok']}",
    ]
    print("\n".join(lines))
    if not record.get("ledger_ok", False):
        print("wit: ledger does not reconcile; see run.json 'ledger'", file=sys.stderr)
        return 1
    return 0
