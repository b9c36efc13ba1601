"""Shared fixtures: one generated mini-web (and its server) and one local Ray per test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = (ROOT / ".." / "shared" / "data").resolve()

# Ray workers and img2dataset subprocesses must find this checkout's package.
os.environ.setdefault("PYTHONPATH", str(ROOT))
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
os.environ.setdefault("TQDM_DISABLE", "1")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real sample data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def world(tmp_path_factory):
    """The tiny mini-web, generated once, with its loopback server running for the session."""
    from wit.world import WorldServer, generate, write_crawl

    root = tmp_path_factory.mktemp("world")
    w = generate(root, size="tiny", seed=0)
    server = WorldServer(root).start()
    write_crawl(root, server.base_url, seed=0)
    w = w.reload()
    w.base_url = server.base_url
    yield w
    server.stop()


@pytest.fixture(scope="session")
def ray_session():
    """One local Ray cluster shared by every ray-marked test (starting one costs ~5 s)."""
    ray = pytest.importorskip("ray")
    from wit.runners.ray import ensure_ray

    ensure_ray(num_cpus=2)
    yield ray
    ray.shutdown()
