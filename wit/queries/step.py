"""Pipeline step ``queries``: build RUN/queries/queries.parquet from the spec's queries section."""

from __future__ import annotations

from wit.queries.build import build_queries


def run_step(ctx) -> dict:
    prov = build_queries(ctx.spec.queries, ctx.output, **ctx.runner_kwargs())
    return {"kept": prov["queries"], **{src: v["kept"] for src, v in prov["sources"].items()},
            "pages": prov.get("wikipedia", {}).get("pages", 0)}
