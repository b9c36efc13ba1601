"""On Ray, the per-host limit holds across workers: two workers, one host, one slot, never two requests."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pyarrow as pa
import pytest

from wit import schemas
from wit.config import DownloadConfig
from wit.download.stage import DownloadStage
from wit.download.job import run_download
from wit.io import folders, ledger
from wit.records import candidate_uid
from wit.runners.local import run_local
from wit.world import WorldServer

pytestmark = pytest.mark.ray


def _parts(folder, base: str, paths: list[str], parts: int) -> list[str]:
    out = []
    for k in range(parts):
        urls = [base + p for p in paths[k::parts]]
        t = pa.table({"uid": [candidate_uid(u, "x") for u in urls], "url": urls, "text": ["a photo"] * len(urls),
                      "page_url": [""] * len(urls), "source": ["w"] * len(urls), "query_ids": [[0]] * len(urls)},
                     schema=schemas.MATCHED)
        folder.mkdir(parents=True, exist_ok=True)
        out.append(str(folder / f"part-{k:05d}.parquet"))
        folders.write_parquet(out[-1], t)
    return out


def test_host_limit_is_global_across_ray_workers(tmp_path, world, ray_session):
    images = sorted(p for p, e in world.manifest["images"].items() if p.startswith("/img/") and e["expected"] == "ok")
    paths = images[:48]  # 8 tasks x 6 URLs, all on one host
    cfg = DownloadConfig(allow_private_networks=True, per_host_concurrency=1, threads=4, retries=0, timeout=10,
                         image_size=32)
    # Each answer takes 100 ms, so workers that each held "their own" slot would overlap.
    with WorldServer(world.root, serve_delay=0.1) as server:
        host = server.base_url.removeprefix("http://")
        inputs = _parts(tmp_path, server.base_url, paths, parts=8)
        led = str(tmp_path / "ledger")
        report = run_download(DownloadStage(cfg=cfg), inputs, str(tmp_path / "dl"), runner="ray", workers=2,
                              ledger_dir=led, progress=False)
        seen = server.max_in_flight()[host]
    assert report["kept"] == len(paths), report
    assert ledger.reconcile(led, {"download": str(tmp_path / "dl")})["download"].ok
    assert seen == 1, f"the server saw {seen} requests at once under a global limit of 1"
    brokers = report["host_limit"]
    assert brokers["granted"] == brokers["released"] == len(paths) and brokers["max_in_flight"] == 1

    # Control: the server's counter does see overlap when two workers each keep their own limit
    # (two in-process workers in threads, host_limit: worker, same URLs and delay).
    worker_cfg = cfg.model_copy(update={"host_limit": "worker"})
    with WorldServer(world.root, serve_delay=0.1) as server:
        inputs = _parts(tmp_path / "ctl", server.base_url, paths, parts=2)
        with ThreadPoolExecutor(2) as pool:
            jobs = [pool.submit(run_local, DownloadStage(cfg=worker_cfg), [(k, inputs[k])],
                                str(tmp_path / "ctl" / f"dl{k}"), None, False) for k in range(2)]
            assert sum(j.result()[0]["kept"] for j in jobs) == len(paths)
        assert server.max_in_flight()[server.base_url.removeprefix("http://")] == 2


def test_no_url_fails_a_part_on_ray(tmp_path, ray_session):
    """Malformed, non-ASCII and private URLs each end as one ledger row on the Ray runner too."""
    from tests.hostile_web import HostileServer
    from tests.unit.test_hostile_web import MALFORMED

    srv = HostileServer().start()
    try:
        good = [srv.base + "/uni/café.jpg", srv.base + "/sp/a b.jpg"]
        private = [f"http://2130706433:{srv.port}/img/x.jpg", f"http://[::1]:{srv.port}/img/y.jpg"]
        urls = MALFORMED + good + private
        texts = [f"t{i}" for i in range(len(urls))]
        uids = [candidate_uid(u, t) for u, t in zip(urls, texts)]
        t = pa.table({"uid": uids, "url": urls, "text": texts, "page_url": [""] * len(urls),
                      "source": ["w"] * len(urls), "query_ids": [[0]] * len(urls)}, schema=schemas.MATCHED)
        inputs = []
        for k in range(2):
            inputs.append(str(tmp_path / "in" / f"part-{k:05d}.parquet"))
            folders.write_parquet(inputs[-1], t.take(list(range(k, len(urls), 2))))
        led = str(tmp_path / "ledger")
        cfg = DownloadConfig(allowed_networks=["127.0.0.1/32"], retries=0, timeout=5, image_size=32)
        run_download(DownloadStage(cfg=cfg), inputs, str(tmp_path / "dl"), runner="ray", workers=2,
                     ledger_dir=led, progress=False)
    finally:
        srv.stop()
    rows = folders.read_parquet(led).to_pylist()
    got = {r["uid"]: r["reason"] for r in rows}
    assert len(rows) == len(urls)
    want = ["bad_url"] * len(MALFORMED) + ["", ""] + ["", "private_address"]
    assert [got[u] for u in uids] == want
    assert ledger.reconcile(led, {"download": str(tmp_path / "dl")})["download"].ok
