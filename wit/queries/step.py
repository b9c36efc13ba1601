"""Pipeline step ``queries``: build RUN/queries/queries.parquet from the spec's queries section.

When the section lists no dumps or pageview files and an earlier ``world`` step left a World in
the run state, the world's mini-Wikipedia dumps and pageview files are used.
"""

from __future__ import annotations

from wit.pipeline import RunContext
from wit.queries.build import build_queries


def run_step(ctx: RunContext) -> dict:
    cfg = ctx.spec.queries
    world = ctx.state.get("world")
    if world is not None:
        update = {}
        if not cfg.wikipedia and getattr(world, "wiki_dumps", None):
            update["wikipedia"] = [str(p) for p in world.wiki_dumps]
        if not cfg.pageviews and getattr(world, "pageviews", None):
            update["pageviews"] = [str(p) for p in world.pageviews]
        cfg = cfg.model_copy(update=update)
    prov = build_queries(cfg, ctx.folder("queries"), **ctx.runner_kwargs())
    return {"kept": prov["queries"], **{src: v["kept"] for src, v in prov["sources"].items()},
            "pages": prov.get("wikipedia", {}).get("pages", 0)}
