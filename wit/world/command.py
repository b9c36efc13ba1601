"""`wit world --out DIR`: generate the mini-web, serve it, write its crawl files, print a summary."""

from __future__ import annotations

import argparse
import json
import threading


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("world", help="generate the synthetic mini-web (and serve it)", description=__doc__)
    p.add_argument("--out", required=True, help="folder to generate into")
    p.add_argument("--size", choices=["tiny", "small"], default="tiny", help="world size (default: tiny)")
    p.add_argument("--seed", type=int, default=0, help="seed; the same seed gives the same bytes")
    p.add_argument("--serve", action="store_true", help="keep serving until Ctrl-C")
    p.add_argument("--port", type=int, default=0, help="port to serve on (default: a free one)")
    p.add_argument("--slow-delay", type=float, default=5.0, help="seconds the /fault/slow route waits")
    p.set_defaults(func=_main)


def summary(world) -> dict:
    """Counts and paths of a world, for people and for run.json."""
    images = world.images
    expected: dict[str, int] = {}
    for e in images.values():
        expected[e["expected"]] = expected.get(e["expected"], 0) + 1
    return {
        "root": world.root,
        "base_url": world.base_url,
        "concepts": len(world.concepts),
        "served_paths": len(images),
        "images": sum(1 for p in images if p.startswith("/img/")),
        "planted": sum(1 for e in images.values() if e.get("planted")),
        "expected": dict(sorted(expected.items())),
        "pages": len(world.manifest["pages"]),
        "pairs": (world.manifest.get("crawl") or {}).get("pairs", 0),
        "wiki_pages": world.manifest["wiki"]["pages"],
        "eval_sets": world.eval_sets,
        "wiki_dumps": world.wiki_dumps,
        "pageviews": len(world.pageviews),
        "wat": world.wat,
        "warc": world.warc,
        "url_list": world.url_list,
    }


def _main(args: argparse.Namespace) -> int:
    from wit.world import WorldServer, generate, write_crawl

    world = generate(args.out, size=args.size, seed=args.seed)
    server = WorldServer(args.out, port=args.port, slow_delay=args.slow_delay).start()
    try:
        write_crawl(args.out, server.base_url, seed=args.seed)
        world = world.reload()
        print(json.dumps(summary(world), indent=2))
        if args.serve:
            print(f"serving {server.base_url} (Ctrl-C to stop)", flush=True)
            threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0
