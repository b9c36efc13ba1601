"""Pipeline step `world`: generate the mini-web into RUN/world, serve it, write its crawl, fill the spec's inputs."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from wit.config import WorldConfig
from wit.errors import UserError

log = logging.getLogger(__name__)

#: RUN/server.json: the port the mini-web was first served on, reused so that the URLs in the run's
#: candidates stay valid after a restart
SERVER_FILE = "server.json"


def serve(root: str, port_file: Path):
    """Start the world's server on the port saved in ``port_file`` (or a free one, then saved)."""
    from wit.world import WorldServer

    port = json.loads(port_file.read_text())["port"] if port_file.exists() else 0
    try:
        server = WorldServer(root, port=port).start()
    except OSError as err:
        raise UserError(f"the mini-web's port {port} (saved in {port_file} so its URLs stay valid across restarts) "
                        f"is in use: {err.strerror}; stop what holds it, or delete {port_file} to serve on a new "
                        "port (the run's later steps are then recomputed)") from None
    port_file.write_text(json.dumps({"port": int(server.base_url.rsplit(":", 1)[1])}))
    return server


def run_step(ctx) -> dict:
    """Generate (``ctx.spec.world``; reloaded when an identical world is already there), serve it for the rest
    of the run on the run's port, write its crawl files, and fill the spec's empty inputs with the world's files."""
    from wit.world import World, generate, write_crawl
    from wit.world.command import summary

    cfg = ctx.spec.world or WorldConfig()
    root = ctx.output
    if not ctx.done_before:
        generate(root, size=cfg.size, seed=cfg.seed)
    server = serve(root, Path(ctx.run.path(SERVER_FILE)))
    ctx.on_close(server.stop)
    world = World.load(root)
    if not ctx.done_before or world.base_url != server.base_url:  # the crawl names the served URLs
        write_crawl(root, server.base_url, seed=cfg.seed)
        world = World.load(root)
    ctx.fill("queries", wikipedia=[str(p) for p in world.wiki_dumps], pageviews=[str(p) for p in world.pageviews])
    crawl = world.warc if ctx.spec.candidates.format == "warc" else world.wat
    ctx.fill("candidates", inputs=[str(p) for p in crawl])
    for section in ("dedupe", "train", "overlap"):
        ctx.fill(section, eval=dict(world.eval_sets))
    s = summary(world)
    return {k: s[k] for k in ("base_url", "concepts", "served_paths", "images", "planted", "expected", "pages",
                              "pairs", "wiki_pages")}
