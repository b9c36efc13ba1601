"""`wit ledger check RUN` and `wit ledger summary RUN`."""

from __future__ import annotations

import argparse
import json
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ledger", help="inspect and reconcile a run's ledger",
                       description="Check that, for each stage of a run, in = kept + dropped and nothing vanished.")
    lsub = p.add_subparsers(dest="ledger_cmd", metavar="ACTION", required=True)
    c = lsub.add_parser("check", help="reconcile every stage; exit 1 if any does not")
    c.add_argument("run", help="run directory")
    c.add_argument("--json", action="store_true", help="print the checks as JSON")
    c.set_defaults(func=_check)
    s = lsub.add_parser("summary", help="per-stage kept/dropped counts by reason")
    s.add_argument("run", help="run directory")
    s.set_defaults(func=_check, json=True)


def _check(args: argparse.Namespace) -> int:
    from wit.io import folders, ledger
    from wit import graph

    run = args.run
    stage_outputs = {s.name: folders.join(run, s.folder) for s in graph.STEPS
                     if folders.exists(folders.join(run, s.folder, folders.MARKERS))}
    chain = [s for s in graph.LEDGER_CHAIN if s in stage_outputs]
    checks = ledger.reconcile(folders.join(run, "ledger"), stage_outputs, chain=chain)
    if not checks:
        print(f"wit: no ledger in {run}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(ledger.as_dict(checks), indent=2))
    else:
        for name in [s for s in chain if s in checks] + [s for s in checks if s not in chain]:
            c = checks[name]
            reasons = ", ".join(f"{r}={n}" for r, n in sorted(c.by_reason.items())) or "-"
            status = "ok" if c.ok else "MISMATCH: " + "; ".join(c.problems)
            print(f"{name:14s} in={c.ledger_rows:<9d} kept={c.kept:<9d} dropped={c.dropped:<8d} [{reasons}]  {status}")
    return 0 if all(c.ok for c in checks.values()) else 1
