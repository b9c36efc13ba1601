"""Pipeline step `world`: generate the mini-web into RUN/world, serve it, write its crawl."""

from __future__ import annotations

from wit.config import WorldConfig


def run_step(ctx) -> dict:
    """Generate (ctx.spec.world), start the server for the rest of the run, write crawl files.

    Leaves ``ctx.state["world"]`` (World with base_url) and ``ctx.state["server"]``; the server's
    stop goes to ``ctx.state["closers"]``, which run_pipeline calls at the end.
    """
    from wit.world import WorldServer, generate, write_crawl
    from wit.world.command import summary

    cfg = ctx.spec.world or WorldConfig()
    root = ctx.folder("world")
    world = generate(root, size=cfg.size, seed=cfg.seed)
    server = WorldServer(root).start()
    ctx.state.setdefault("closers", []).append(server.stop)
    write_crawl(root, server.base_url, seed=cfg.seed)
    world = world.reload()
    world.base_url = server.base_url
    ctx.state["world"] = world
    ctx.state["server"] = server
    s = summary(world)
    return {k: s[k] for k in ("base_url", "concepts", "served_paths", "images", "planted", "expected", "pages",
                              "pairs", "wiki_pages")}
