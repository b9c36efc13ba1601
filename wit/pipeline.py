"""`wit run SPEC.yaml --out RUN`: run the steps a spec lists, in order, into a run directory.

Each step is a function ``run_step(ctx: RunContext) -> dict`` in its package (see STEPS); it
reads what earlier steps wrote under RUN and returns its counts, which go into RUN/run.json
with the step's timing. A finished step is skipped on a rerun only through its stage's
completion markers, so a killed run resumes where it stopped.
"""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import platform
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from wit import __version__
from wit.config import RunSpec, load_yaml
from wit.io import folders

log = logging.getLogger(__name__)

# step name -> "module:function"
STEPS: dict[str, str] = {
    "world": "wit.world.step:run_step",
    "queries": "wit.queries.step:run_step",
    "candidates": "wit.candidates.step:run_step",
    "match": "wit.match.step:run_step",
    "balance": "wit.balance.step:run_step",
    "download": "wit.download.step:run_step",
    "filter": "wit.filter.step:run_step",
    "dedupe": "wit.dedupe.step:run_step",
    "balance_final": "wit.balance.step:run_final_step",
    "shard": "wit.shard.step:run_step",
    "train": "wit.train.step:run_step",
    "overlap": "wit.overlap.step:run_step",
}

# The run-directory folder each step writes (DESIGN.md's contract).
FOLDERS: dict[str, str] = {
    "world": "world",
    "queries": "queries",
    "candidates": "candidates",
    "match": "matched",
    "balance": "balanced",
    "download": "downloaded",
    "filter": "filtered",
    "dedupe": "deduped",
    "balance_final": "final",
    "shard": "shards",
    "train": "train",
    "overlap": "overlap",
}


@dataclass
class RunContext:
    spec: RunSpec
    out: str
    runner: str = "local"
    address: str | None = None
    workers: int | None = None
    progress: bool = True
    # Values steps hand to later steps (e.g. the world's server URL and eval set paths).
    state: dict[str, Any] = field(default_factory=dict)

    def path(self, *parts: str) -> str:
        return folders.join(self.out, *parts)

    def folder(self, step: str) -> str:
        return self.path(FOLDERS[step])

    @property
    def ledger(self) -> str:
        return self.path("ledger")

    def runner_kwargs(self) -> dict:
        return dict(runner=self.runner, address=self.address, workers=self.workers,
                    progress=self.progress, ledger_dir=self.ledger)


def resolve(step: str):
    module, func = STEPS[step].split(":")
    return getattr(importlib.import_module(module), func)


def _versions() -> dict:
    out = {"wit": __version__, "python": sys.version.split()[0], "platform": platform.platform()}
    for mod in ("pyarrow", "duckdb", "ray", "torch", "open_clip", "img2dataset", "webdataset", "nltk"):
        try:
            out[mod] = importlib.import_module(mod).__version__
        except Exception:  # noqa: BLE001 - a missing optional package is just not listed
            pass
    return out


def run_pipeline(ctx: RunContext, steps: list[str] | None = None) -> dict:
    """Run the spec's steps in order; write and return RUN/run.json."""
    steps = steps or ctx.spec.steps
    folders.makedirs(ctx.out)
    run_json = ctx.path("run.json")
    record = folders.read_json(run_json) if folders.exists(run_json) else {}
    record.update({
        "config": json.loads(ctx.spec.model_dump_json()),
        "versions": _versions(),
        "seed": ctx.spec.seed,
        "runner": ctx.runner,
        "steps": steps,
    })
    record.setdefault("stages", {})
    try:
        for step in steps:
            t0 = time.perf_counter()
            log.info("step %s", step)
            try:
                result = resolve(step)(ctx) or {}
            except Exception as err:
                record["failed"] = {"step": step, "error": repr(err), "tasks": getattr(err, "failures", [])}
                folders.write_json(run_json, record)
                raise
            result["seconds"] = round(time.perf_counter() - t0, 3)
            record["stages"][step] = result
            folders.write_json(run_json, record)
        from wit.io import ledger

        chain = [s for s in ("candidates", "match", "balance", "download", "filter", "dedupe", "balance_final", "shard")
                 if s in steps]
        checks = ledger.reconcile(ctx.ledger, {s: ctx.folder(s) for s in chain if folders.exists(ctx.folder(s))},
                                  chain=chain, runner=ctx.runner, address=ctx.address)
        record["ledger"] = ledger.as_dict(checks)
        record["ledger_ok"] = all(c.ok for c in checks.values())
        folders.write_json(run_json, record)
    finally:
        for closer in ctx.state.get("closers", []):
            closer()
    return record


def register(sub: argparse._SubParsersAction) -> None:
    from wit.cli import add_runner_args

    p = sub.add_parser("run", help="run the steps a pipeline spec lists, in order",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("spec", help="pipeline spec (YAML), e.g. pipelines/demo.yaml")
    p.add_argument("--out", required=True, help="run directory (created; rerun to resume)")
    p.add_argument("--steps", default=None, help="comma-separated subset of the spec's steps")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a spec value, e.g. --set balance.t=100 (YAML value syntax)")
    add_runner_args(p)
    p.set_defaults(func=_main, runner=None)


def _main(args: argparse.Namespace) -> int:
    import yaml

    overrides = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"--set wants KEY=VALUE, got {item!r}")
        overrides[key] = yaml.safe_load(value)
    spec = load_yaml(args.spec, RunSpec, overrides)
    ctx = RunContext(spec, args.out, runner=args.runner or spec.runner, address=args.address or spec.address,
                     workers=args.workers, progress=args.progress)
    steps = args.steps.split(",") if args.steps else None
    record = run_pipeline(ctx, steps)
    print(json.dumps({k: v.get("kept", v) if isinstance(v, dict) else v for k, v in record["stages"].items()}, indent=2, default=str))
    if not record.get("ledger_ok", True):
        print("wit: ledger does not reconcile; see run.json 'ledger'", file=sys.stderr)
        return 1
    return 0
