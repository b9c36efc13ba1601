"""A deterministic synthetic mini-web (images, pages, crawl files, Wikipedia, eval sets) and its server.

    w = generate(root, size="tiny", seed=0)        # static content + manifest.json
    with WorldServer(root) as server:              # loopback HTTP with fault routes
        write_crawl(root, server.base_url, seed=0) # pages, WAT, WARC, URL list for that URL
        w = w.reload()
"""

from wit.world.crawl import write_crawl
from wit.world.generate import generate
from wit.world.reasons import FAULT_ROUTES, REASONS
from wit.world.server import WorldServer
from wit.world.world import World

__all__ = ["FAULT_ROUTES", "REASONS", "World", "WorldServer", "generate", "write_crawl"]
