"""`wit queries build --out DIR [--spec queries/NAME.yaml] [...]`: build the query list.

Flags override the spec; the spec overrides QueriesConfig's defaults (CLIP / MetaCLIP values).
"""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    from wit.cli_args import add_runner_args

    p = sub.add_parser("queries", help="build the query list from Wikipedia, pageviews and WordNet",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    qsub = p.add_subparsers(dest="queries_command", metavar="ACTION")
    b = qsub.add_parser("build", help="build DIR/queries.parquet and DIR/provenance.json")
    b.add_argument("--out", required=True, help="output folder (rerun to resume the counting)")
    b.add_argument("--spec", default=None, help="query-build spec (YAML), e.g. queries/wit-500k.yaml")
    b.add_argument("--wikipedia", nargs="+", default=None, metavar="PATH_OR_URL",
                   help="pages-articles XML .bz2 dump(s), single- or multistream")
    b.add_argument("--pageviews", nargs="+", default=None, metavar="PATH_OR_URL",
                   help="hourly pageview .gz file(s)")
    b.add_argument("--no-wordnet", dest="wordnet", action="store_const", const=False, default=None,
                   help="leave out WordNet synset names")
    b.add_argument("--budget-mode", dest="budget_mode", choices=["cut", "whole"], default=None,
                   help="cut: stop at --budget (default); whole: add every source whole, as MetaCLIP's script")
    for flag, key, typ, help_ in (
        ("--unigram-min", "unigram_min", int, "keep tokens counted at least this often (CLIP: 100)"),
        ("--pmi-min", "pmi_min", float, "keep bigrams with log2 PMI at least this (CLIP: 30)"),
        ("--views-min", "views_min", int, "keep titles with at least this many summed views (70)"),
        ("--budget", "budget", int, "stop the list at this many queries (500000)"),
        ("--bigram-min-count", "bigram_min_count", int, "score only bigrams seen this often (1)"),
        ("--hourly-views-min", "hourly_views_min", int, "sum only hourly counts of at least this (50)"),
        ("--task-mb", "task_mb", float, "compressed MB per counting task, multistream dumps (64)"),
        ("--stride-parts", "stride_parts", int, "page-stride tasks per single-stream dump (1)"),
    ):
        b.add_argument(flag, dest=key, type=typ, default=None, help=help_)
    add_runner_args(b)
    b.set_defaults(func=_build)
    p.set_defaults(func=lambda args: (p.print_help(), 2)[1])


OVERRIDABLE = ("wikipedia", "pageviews", "wordnet", "unigram_min", "pmi_min", "views_min", "budget",
               "budget_mode", "bigram_min_count", "hourly_views_min", "task_mb", "stride_parts")


def load_config(spec: str | None, overrides: dict):
    """QueriesConfig from ``spec`` (or defaults) with the non-None ``overrides`` applied."""
    from wit.config import QueriesConfig, load_model, load_yaml

    given = {k: v for k, v in overrides.items() if v is not None}
    if spec:
        return load_yaml(spec, QueriesConfig, given)
    return load_model(QueriesConfig, given, "<flags>")


def _build(args: argparse.Namespace) -> int:
    from wit.queries.build import build_queries

    cfg = load_config(args.spec, {k: getattr(args, k) for k in OVERRIDABLE})
    if not (cfg.wikipedia or cfg.pageviews or cfg.wordnet):
        raise ValueError("nothing to build from: give --wikipedia, --pageviews or keep WordNet")
    prov = build_queries(cfg, args.out, runner=args.runner, address=args.address, workers=args.workers,
                         progress=args.progress)
    print(json.dumps({"queries": prov["queries"], "kept": {s: v["kept"] for s, v in prov["sources"].items()},
                      "out": args.out}, indent=2))
    return 0
