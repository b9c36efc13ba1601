"""The step graph: one declaration per pipeline step, the single source of the pipeline's shape.

`wit run` (order, inputs, resume), `wit --help` (the stage commands), `wit ledger` (the chain of
stages whose counts must carry over) and the run-directory folder names all read ``STEPS``.
A step's run function receives its upstream steps' folders as ``ctx.inputs`` (in the order
declared here) and writes ``ctx.output``; it never names another step's folder.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class Step:
    """One pipeline step.

    ``folder`` is its run-directory folder; ``upstream`` the steps whose folders it reads;
    ``run`` its ``"module:function"`` taking a ``StepContext``; ``ledger`` whether it is a link of the
    ledger chain (each one's input is the previous one's kept rows); ``command`` the module whose
    ``register(subparsers)`` adds `wit NAME` (None: no command of its own); ``owns`` further
    run-directory folders it writes, recomputed with it.
    """

    name: str
    folder: str
    run: str
    help: str
    upstream: tuple[str, ...] = ()
    ledger: bool = False
    command: str | None = None
    owns: tuple[str, ...] = ()

    def load(self) -> Callable:
        module, _, func = self.run.partition(":")
        return getattr(importlib.import_module(module), func)


STEPS: tuple[Step, ...] = (
    Step("world", "world", "wit.world.step:run_step", "generate the synthetic mini-web (and serve it)",
         command="wit.world.command"),
    Step("queries", "queries", "wit.queries.step:run_step",
         "build the query list from Wikipedia, pageviews and WordNet", command="wit.queries.command"),
    Step("candidates", "candidates", "wit.candidates.step:run_step",
         "extract (image URL, alt text) candidates from WAT/WARC/URL lists", ledger=True,
         command="wit.candidates.command"),
    Step("match", "matched", "wit.match.step:run_step",
         "substring-match candidates against the queries (MetaCLIP semantics)",
         upstream=("queries", "candidates"), ledger=True, command="wit.match.command"),
    Step("balance", "balanced", "wit.balance.step:run_step",
         "balance matched pairs with a per-query cap t (MetaCLIP Algorithm 1)",
         upstream=("match",), ledger=True, command="wit.balance.command"),
    Step("download", "downloaded", "wit.download.step:run_step",
         "download images with img2dataset (politeness, opt-outs, retries)",
         upstream=("balance",), ledger=True, command="wit.download.command"),
    Step("filter", "filtered", "wit.filter.step:run_step",
         "filter downloaded images (decode, size, aspect, caption, model hooks)",
         upstream=("download",), ledger=True, command="wit.filter.command"),
    Step("dedupe", "deduped", "wit.dedupe.step:run_step",
         "index eval sets and drop their copies and in-set near-duplicates",
         upstream=("filter",), ledger=True, command="wit.dedupe.command", owns=("eval_index",)),
    Step("balance_final", "final", "wit.balance.step:run_final_step",
         "balance the surviving pairs again with the final cap t (the pool's entry counts)",
         upstream=("dedupe", "match"), ledger=True),
    Step("shard", "shards", "wit.shard.step:run_step", "write webdataset tar + Parquet shards",
         upstream=("balance_final",), ledger=True, command="wit.shard.command"),
    Step("train", "train", "wit.train.step:run_step", "train a CLIP model straight from the shards",
         upstream=("shard",), command="wit.train.command"),
    Step("overlap", "overlap", "wit.overlap.step:run_step",
         "data-overlap analysis against eval sets (CLIP section 5)", upstream=("shard", "train"),
         command="wit.overlap.command"),
)

BY_NAME: dict[str, Step] = {s.name: s for s in STEPS}
NAMES: tuple[str, ...] = tuple(BY_NAME)
#: the stages whose ledger counts chain, in pipeline order
LEDGER_CHAIN: tuple[str, ...] = tuple(s.name for s in STEPS if s.ledger)


def step(name: str) -> Step:
    """The step called ``name``; an unknown name is a ValueError listing the known ones."""
    if name not in BY_NAME:
        raise ValueError(f"unknown step {name!r}; known: {', '.join(NAMES)}")
    return BY_NAME[name]


def folder(name: str) -> str:
    """The run-directory folder step ``name`` writes."""
    return step(name).folder


def downstream(names: set[str]) -> set[str]:
    """``names`` and every step that reads, directly or not, from one of them."""
    out = set(names)
    for s in STEPS:  # declaration order is a topological order
        if any(u in out for u in s.upstream):
            out.add(s.name)
    return out
