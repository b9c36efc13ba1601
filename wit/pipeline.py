"""`wit run SPEC.yaml --out RUN`: run the steps a spec lists, in graph order, into a run directory.

The steps and how they connect are declared once in wit/graph.py. Each step's run function takes
a ``StepContext`` (its config, its upstream folders as ``ctx.inputs``, its folder as ``ctx.output``)
and returns its counts, which go into RUN/run.json with the step's timing.

Resume: a step's record (``FOLDER/_step.json``) carries a fingerprint of its config section, of the
files its config names and of its upstream folders. A rerun skips a finished step whose fingerprint
is unchanged, finishes a started one through its tasks' completion markers, and recomputes from
scratch (with everything downstream) a step whose fingerprint changed. One run at a time holds
``RUN/.lock``.
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
from typing import Any, Callable

from wit import __version__, graph, resume
from wit.config import ConfigError, RunSpec, load_yaml
from wit.io import folders

log = logging.getLogger(__name__)


@dataclass
class RunContext:
    """One run: its spec (inputs filled in by the world step), run directory and runner options."""

    spec: RunSpec
    out: str
    runner: str = "local"
    address: str | None = None
    workers: int | None = None
    progress: bool = True
    #: stopped when the run ends (e.g. the mini-web's server)
    closers: list[Callable[[], None]] = field(default_factory=list)

    def path(self, *parts: str) -> str:
        return folders.join(self.out, *parts)

    def folder(self, step: str) -> str:
        """The run-directory folder of step ``step`` (for the pipeline and tests; steps use ``inputs``)."""
        return self.path(graph.folder(step))

    @property
    def ledger(self) -> str:
        return self.path("ledger")

    def runner_kwargs(self) -> dict:
        return dict(runner=self.runner, address=self.address, workers=self.workers,
                    progress=self.progress, ledger_dir=self.ledger)

    def for_step(self, name: str) -> "StepContext":
        return StepContext(self, graph.step(name))

    def close(self) -> None:
        while self.closers:
            self.closers.pop()()


@dataclass
class StepContext:
    """What one step sees of the run: its config, its upstream folders and its own folder."""

    run: RunContext
    step: graph.Step
    #: the step finished before with the same fingerprint (the world step then reloads instead of regenerating)
    done_before: bool = False

    @property
    def spec(self) -> RunSpec:
        return self.run.spec

    @property
    def address(self) -> str | None:
        return self.run.address

    @property
    def inputs(self) -> tuple[str, ...]:
        """The folders of the step's upstream steps, in the order the graph declares them."""
        return tuple(self.run.folder(u) for u in self.step.upstream)

    @property
    def output(self) -> str:
        return self.run.folder(self.step.name)

    def owned(self, name: str) -> str:
        """A further run-directory folder this step writes (declared in ``Step.owns``)."""
        if name not in self.step.owns:
            raise ValueError(f"step {self.step.name} does not own {name!r}; declare it in wit/graph.py")
        return self.run.path(name)

    def runner_kwargs(self) -> dict:
        return self.run.runner_kwargs()

    def fill(self, section: str, **values: Any) -> None:
        """Set the spec's ``section.key`` values that the spec leaves empty (the world's inputs)."""
        cfg = getattr(self.run.spec, section)
        update = {k: v for k, v in values.items() if not getattr(cfg, k)}
        if update:
            self.run.spec = self.run.spec.model_copy(update={section: cfg.model_copy(update=update)})

    def on_close(self, fn: Callable[[], None]) -> None:
        self.run.closers.append(fn)


def _versions() -> dict:
    out = {"wit": __version__, "python": sys.version.split()[0], "platform": platform.platform()}
    for mod in ("pyarrow", "duckdb", "ray", "torch", "open_clip", "img2dataset", "webdataset", "nltk"):
        try:
            out[mod] = importlib.import_module(mod).__version__
        except Exception:  # noqa: BLE001 - a missing optional package is just not listed
            pass
    return out


def check_steps(requested: list[str] | None, spec: RunSpec) -> list[str]:
    """The steps to run, in graph order; an unknown name or one the spec does not list is a ConfigError."""
    if requested is None:
        return [s for s in graph.NAMES if s in spec.steps]
    unknown = [s for s in requested if s not in graph.BY_NAME]
    if unknown:
        raise ConfigError(f"--steps: unknown step(s) {', '.join(unknown)}; known: {', '.join(graph.NAMES)}")
    absent = [s for s in requested if s not in spec.steps]
    if absent:
        raise ConfigError(f"--steps: {', '.join(absent)} not in the spec's steps ({', '.join(spec.steps)})")
    return [s for s in graph.NAMES if s in requested]


def run_pipeline(ctx: RunContext, steps: list[str] | None = None) -> dict:
    """Run the steps in graph order, resuming or recomputing each by its fingerprint; return RUN/run.json."""
    steps = check_steps(steps, ctx.spec)
    if "world" in ctx.spec.steps and "world" not in steps:
        steps = ["world", *steps]  # it serves the mini-web and fills the spec's inputs for the others
    folders.makedirs(ctx.out)
    with resume.RunLock(ctx.out):
        try:
            return _run(ctx, steps)
        finally:
            ctx.close()


def _run(ctx: RunContext, steps: list[str]) -> dict:
    run_json = ctx.path("run.json")
    record = folders.read_json(run_json) if folders.exists(run_json) else {}
    record.update({"versions": _versions(), "seed": ctx.spec.seed, "runner": ctx.runner, "steps": steps})
    record.setdefault("stages", {})
    stale: set[str] = set()
    for name in steps:
        sctx = ctx.for_step(name)
        fp = resume.fingerprint(sctx)
        state = resume.state(ctx.path(sctx.step.folder), fp)
        if state == "stale" or name in stale:
            log.info("step %s: config or inputs changed; recomputing it and what follows", name)
            stale |= graph.downstream({name})
            state = "new"
        if state == "new":
            resume.clear(ctx, sctx.step)
        sctx.done_before = state == "done"
        if state == "done" and name != "world":
            log.info("step %s: done (unchanged), skipped", name)
            record["stages"][name] = resume.result(ctx.path(sctx.step.folder))
            continue
        log.info("step %s", name)
        t0 = time.perf_counter()
        resume.start(ctx.path(sctx.step.folder), fp)
        try:
            result = sctx.step.load()(sctx) or {}
        except Exception as err:
            record["failed"] = {"step": name, "error": repr(err), "tasks": getattr(err, "failures", [])}
            folders.write_json(run_json, record)
            raise
        record.pop("failed", None)
        result["seconds"] = round(time.perf_counter() - t0, 3)
        resume.finish(ctx.path(sctx.step.folder), fp, result)
        record["stages"][name] = result
        # Analyses a step could not run, and why (e.g. no eval sets): listed together.
        record.setdefault("skipped", {}).pop(name, None)
        if result.get("skipped"):
            record["skipped"][name] = result["skipped"]
        folders.write_json(run_json, record | {"config": json.loads(ctx.spec.model_dump_json())})
    record["config"] = json.loads(ctx.spec.model_dump_json())
    from wit.io import ledger

    chain = [s for s in graph.LEDGER_CHAIN if s in steps]
    checks = ledger.reconcile(ctx.ledger, {s: ctx.folder(s) for s in chain if folders.exists(ctx.folder(s))},
                              chain=chain, runner=ctx.runner, address=ctx.address)
    record["ledger"] = ledger.as_dict(checks)
    record["ledger_ok"] = all(c.ok for c in checks.values())
    folders.write_json(run_json, record)
    return record


def register(sub: argparse._SubParsersAction) -> None:
    from wit.cli_args import add_runner_args

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
    from wit.cli_args import parse_sets

    from wit.runners import settings

    overrides = parse_sets(args.set)
    for key, flag in (("object_store_memory", "object_store_memory"), ("spill_dir", "spill_dir")):
        if getattr(args, flag, None) is not None:  # the execution flags win over the spec's ray: section
            overrides[f"ray.{key}"] = getattr(args, flag)
    spec = load_yaml(args.spec, RunSpec, overrides)
    settings.from_spec(spec.ray)
    steps = check_steps([s.strip() for s in args.steps.split(",") if s.strip()] if args.steps else None, spec)
    ctx = RunContext(spec, args.out, runner=args.runner or spec.runner, address=args.address or spec.address,
                     workers=args.workers, progress=args.progress)
    record = run_pipeline(ctx, steps)
    print(json.dumps({k: v.get("kept", v) if isinstance(v, dict) else v for k, v in record["stages"].items()},
                     indent=2, default=str))
    if not record.get("ledger_ok", True):
        print("wit: ledger does not reconcile; see run.json 'ledger'", file=sys.stderr)
        return 1
    return 0

