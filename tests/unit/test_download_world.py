"""Against the mini-web: every served path ends with the manifest's expected outcome, and planted
eval copies are dropped by dedupe before they could reach the shards."""

from __future__ import annotations

import pyarrow as pa

from wit import schemas
from wit.config import DedupeConfig, DownloadConfig, FilterConfig
from wit.dedupe.index import EvalIndex
from wit.dedupe.job import run_dedupe
from wit.download.stage import DownloadStage
from wit.filter.stage import FilterStage
from wit.io import folders, ledger
from wit.records import candidate_uid
from wit.runners import run_stage
from wit.shard.job import write_shards


def test_world_routes_and_planted_copies(tmp_path, world):
    paths = sorted(p for p, e in world.manifest["images"].items() if e.get("in_crawl", True)) \
        if "images" in world.manifest else sorted(world.manifest)
    entries = world.manifest.get("images", world.manifest)
    urls = [world.base_url + p for p in paths]
    t = pa.table({"uid": [candidate_uid(u, "x") for u in urls], "url": urls, "text": ["a photo"] * len(urls),
                  "page_url": [""] * len(urls), "source": ["w"] * len(urls), "query_ids": [[0]] * len(urls)},
                 schema=schemas.MATCHED)
    inp = str(tmp_path / "in" / "part-00000.parquet")
    folders.write_parquet(inp, t)
    led = str(tmp_path / "ledger")
    cfg = DownloadConfig(allow_private_networks=True, timeout=3.0, retries=0, max_bytes=2_000_000, threads=16)  # slow route: 5 s
    run_stage(DownloadStage(cfg=cfg), [inp], str(tmp_path / "dl"), ledger_dir=led, progress=False)
    got = {r["uid"]: r["reason"] or "ok" for r in folders.read_parquet(led).to_pylist()}
    wrong = {p: (entries[p]["expected"], got[candidate_uid(world.base_url + p, "x")]) for p in paths
             if got[candidate_uid(world.base_url + p, "x")] != entries[p]["expected"]}
    assert not wrong, f"path: (expected, got) {wrong}"

    run_stage(FilterStage(cfg=FilterConfig(min_side=16, max_aspect=10)), [str(tmp_path / "dl/part-00000.parquet")],
              str(tmp_path / "f"), ledger_dir=led, progress=False)
    EvalIndex.build(world.eval_sets).save(str(tmp_path / "ix"))
    run_dedupe(folders.expand(str(tmp_path / "f"), (".parquet",)), str(tmp_path / "d"), str(tmp_path / "ix"),
               DedupeConfig(), ledger_dir=led, progress=False)
    write_shards(folders.expand(str(tmp_path / "d"), (".parquet",)), str(tmp_path / "s"), 50, ledger_dir=led,
                 progress=False)
    planted = {candidate_uid(world.base_url + p, "x"): entries[p]["planted"]["perturbation"] for p in paths
               if entries[p].get("planted")}
    assert planted
    in_shards = set(folders.read_parquet([str(p) for p in (tmp_path / "s").glob("[0-9]*.parquet")])
                    .column("uid").to_pylist())
    leaked = [how for uid, how in planted.items() if uid in in_shards]
    # pHash (+ indexed crop variants) misses some anisotropic crops: known, documented in docs/dedupe.md.
    assert not [h for h in leaked if h != "crop"], f"planted eval copies reached the shards: {leaked}"
    n_crops = sum(h == "crop" for h in planted.values())
    assert leaked.count("crop") <= n_crops // 2, f"{leaked.count('crop')} of {n_crops} cropped copies leaked"
    checks = ledger.reconcile(led, {"download": str(tmp_path / "dl"), "filter": str(tmp_path / "f"),
                                    "dedupe": str(tmp_path / "d"), "shard": str(tmp_path / "s")},
                              chain=["download", "filter", "dedupe", "shard"])
    assert all(c.ok for c in checks.values()), {k: c.problems for k, c in checks.items()}
