"""Every global step gives the same rows under ``runner="ray"`` (a shuffle) as its local twin."""

from __future__ import annotations

import contextlib
import re

import numpy as np
import pyarrow as pa
import pyarrow.compute  # noqa: F401 - pa.compute
import pytest

from wit.imagehash import mih
from wit.dedupe.describe import descriptor_url
from wit.dedupe.near import NEAR_DUPS
from wit.distributed import global_ops as g
from wit.distributed import near_dups
from wit.distributed.shuffle import GlobalStepError, ShuffleConfig
from wit.io import folders, ledger

pytestmark = pytest.mark.ray

CFG = ShuffleConfig(partitions=3)
#: one map task per file, merged in rounds of two (the driver-memory bound of large shuffles)
ROUNDS = ShuffleConfig(partitions=3, rows_per_partition=1, merge_fanin=2)


def _matched_parts(root, parts: int = 5, rows: int = 400, seed: int = 0) -> list[str]:
    """Matched-like parts: Zipf-ish query ids, some uids repeated across parts."""
    rng = np.random.default_rng(seed)
    paths = []
    for p in range(parts):
        uids = [f"{rng.integers(0, 1500):032x}" for _ in range(rows)]
        qids = [sorted(set(int(q) for q in np.minimum(rng.zipf(1.6, rng.integers(1, 4)), 60))) for _ in range(rows)]
        t = pa.table({"uid": uids, "query_ids": pa.array(qids, pa.list_(pa.int32())),
                      "source": [f"s{rng.integers(0, 3)}" for _ in range(rows)]})
        paths.append(str(root / f"part-{p:05d}.parquet"))
        folders.write_parquet(paths[-1], t)
    return paths


def _sorted(t: pa.Table) -> pa.Table:
    return t.sort_by([(c, "ascending") for c in t.column_names])


@pytest.mark.parametrize("cfg", [CFG, ROUNDS], ids=["one-round", "merge-rounds"])
def test_match_and_balance_global_steps_equal_local(tmp_path, ray_session, cfg):
    CFG = cfg  # noqa: N806 - the shuffle configuration under test
    parts = _matched_parts(tmp_path)
    for runner in ("local", "ray"):
        g.write_later_duplicates(parts, str(tmp_path / f"dups-{runner}.parquet"), runner=runner, cfg=CFG)
    local, remote = (folders.read_parquet([str(tmp_path / f"dups-{r}.parquet")]) for r in ("local", "ray"))
    assert local.num_rows > 100 and _sorted(local).equals(_sorted(remote))
    # sorted by part, so a match task reads its own part's row groups only
    for t in (local, remote):
        assert t.column("part").to_pylist() == sorted(t.column("part").to_pylist())
    for i in range(len(parts)):
        want = local.filter(pa.compute.equal(local.column("part"), i)).column("uid").to_pylist()
        assert folders.read_part(str(tmp_path / "dups-ray.parquet"), i, ["uid"]).column("uid").to_pylist() == want

    counts = g.entry_counts(parts)
    assert g.entry_counts(parts, runner="ray", cfg=CFG).equals(counts)
    for cap in (5, 40):
        want = g.hardcap_thresholds(parts, counts, cap, seed=7)
        assert want.num_rows > 0
        assert g.hardcap_thresholds(parts, counts, cap, seed=7, runner="ray", cfg=CFG).equals(want)
    assert g.count_by(parts, "source", runner="ray", cfg=CFG) == g.count_by(parts, "source") != {}
    assert not (tmp_path / folders.SHUFFLE).exists()  # each step's shuffle files went with it


@pytest.mark.parametrize("cfg", [CFG, ROUNDS], ids=["one-round", "merge-rounds"])
def test_shard_chunks_and_ledger_summary_equal_local(tmp_path, ray_session, cfg):
    CFG = cfg  # noqa: N806 - the shuffle configuration under test
    parts = _matched_parts(tmp_path / "in", parts=4, rows=333)
    chunks = {r: g.make_chunks(parts, str(tmp_path / r), 250, runner=r, cfg=CFG) for r in ("local", "ray")}
    assert len(chunks["local"]) == len(chunks["ray"]) == 6  # 1332 rows
    for a, b in zip(chunks["local"], chunks["ray"]):
        assert folders.read_parquet([a]).equals(folders.read_parquet([b]))

    led = str(tmp_path / "ledger")
    for i, p in enumerate(parts):
        t = folders.read_parquet([p])
        drops = pa.table({"uid": t.column("uid").slice(0, 50), "reason": ["too_small"] * 25 + ["duplicate"] * 25})
        ledger.write_part(led, "stage_a", i, ledger.ledger_table("stage_a", t.column("uid").slice(50), drops))
    # a part whose stage kept nothing, and one with no rows at all
    ledger.write_part(led, "stage_b", 0, ledger.ledger_table("stage_b", [], pa.table(
        {"uid": ["x", "y"], "reason": ["too_small", "too_small"]})))
    ledger.write_part(led, "stage_b", 1, ledger.ledger_table("stage_b", [], pa.table(
        {"uid": pa.array([], pa.string()), "reason": pa.array([], pa.string())})))
    want, got = ledger.summarize(led), g.summarize_ledger(led, runner="ray", cfg=CFG)
    assert want["stage_a"].duplicate_kept > 0 and want["stage_b"].dropped == 2
    assert {k: vars(v) for k, v in got.items()} == {k: vars(v) for k, v in want.items()}
    assert not folders.exists(folders.join(led, folders.SHUFFLE))  # its shuffle files are gone


def _spread(path: str, p: int) -> list[pa.Table]:
    """Rows to partitions 1 and p - 2 only (the others get none), by the parity of ``x``."""
    t = folders.read_parquet([path])
    odd = pa.compute.equal(pa.compute.bit_wise_and(t.column("x"), 1), 1)
    out = [t.schema.empty_table() for _ in range(p)]
    out[1], out[p - 2] = t.filter(odd), t.filter(pa.compute.invert(odd))
    return out


def _sorted_x(j: int, tables: list[pa.Table]) -> pa.Table:
    t = pa.concat_tables(tables)
    return t.sort_by("x").append_column("j", pa.array([j] * t.num_rows, pa.int64()))


def _halves(j: int, tables: list[pa.Table]) -> list[pa.Table]:
    """Fan-out 2: rows with x < 100, then the rest."""
    t = pa.concat_tables(tables)
    low = pa.compute.less(t.column("x"), 100)
    return [t.filter(low), t.filter(pa.compute.invert(low))]


@pytest.mark.parametrize("cfg", [CFG, ROUNDS], ids=["one-map", "map-per-file"])
def test_shuffle_through_files_equals_the_object_store_one(tmp_path, ray_session, cfg):
    from wit.distributed import shuffle as sh

    files = []
    for i, n in enumerate([40, 0, 25]):
        files.append(str(tmp_path / f"in-{i}.parquet"))
        folders.write_parquet(files[-1], pa.table({"x": pa.array(range(i * 100, i * 100 + n), pa.int64())}))
    cfg = ShuffleConfig(partitions=5, rows_per_partition=cfg.rows_per_partition)
    by_objects = list(sh.results("t", sh.shuffle("t", files, _spread, _sorted_x, cfg)))
    scratch = str(tmp_path / "scratch")
    by_files = list(sh.results("t", sh.shuffle("t", files, _spread, _sorted_x, cfg, scratch=scratch)))
    assert [t.num_rows for t in by_files] == [0, 32, 0, 33, 0]
    assert all(a.equals(b) for a, b in zip(by_objects, by_files)) and len(by_files) == 5
    # a fan-out regrouped: through files inside through_files, through the object store outside
    fanned = []
    for scope in (contextlib.nullcontext(), sh.through_files(str(tmp_path / "fan"))):
        with scope:
            refs = sh.shuffle("t", files, _spread, _halves, cfg, fanout=2)
            fanned.append([t.column("x").to_pylist() for t in sh.results("t", sh.regroup("t", refs, _sorted_x, cfg))])
            assert isinstance(refs[0], sh.FileFanout) == (len(fanned) == 2)
    assert fanned[0] == fanned[1] == [sorted(x for x in [*range(40), *range(200, 225)] if x < 100),
                                      list(range(200, 225))]
    assert not (tmp_path / "fan" / folders.SHUFFLE).exists()
    # one file per map task (the empty input joins the next one's task)
    maps = folders.list_named(scratch, re.compile(r"map-\d+\.shuffle"))
    assert len(maps) == (1 if cfg.rows_per_partition > 100 else 2)


def _descriptors(out, parts: int = 4, rows: int = 1500, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 2**63, 600, dtype=np.int64).astype(np.uint64) * np.uint64(2)
    for p in range(parts):
        pick = base[rng.integers(0, len(base), rows)]
        ph = mih.flip_random_bits(rng, pick, 6)
        pixels = [f"px{rng.integers(0, 4000)}" for _ in range(rows)]
        uids = [f"{p:02d}{rng.integers(0, 2**40):016x}" for _ in range(rows)]
        err = ["" if rng.random() > 0.05 else "decode" for _ in range(rows)]
        folders.write_parquet(descriptor_url(str(out), p), pa.table(
            {"uid": uids, "pixel_xxh3": pixels, "phash": pa.array(ph, pa.uint64()), "error": err}))


@pytest.mark.parametrize("threshold,rows_per_partition", [(4, 1500), (9, 100_000)])
def test_near_duplicates_equal_single_node_pass(tmp_path, ray_session, threshold, rows_per_partition):
    from wit.dedupe.near import near_duplicates as single_node

    for r in ("local", "ray"):
        _descriptors(tmp_path / r)
    want = single_node(str(tmp_path / "local"), threshold)
    m, ranges = near_dups.plan(6000, threshold, rows_per_partition)
    assert want.num_rows > 1000 and (ranges > 1 or rows_per_partition > 6000)
    cfg = ShuffleConfig(partitions=3, rows_per_partition=rows_per_partition)
    n = near_dups.near_duplicates(str(tmp_path / "ray"), threshold, runner="ray", cfg=cfg)
    got = folders.read_parquet([str(tmp_path / "ray" / NEAR_DUPS)])
    assert n == want.num_rows
    assert _sorted(got).equals(_sorted(want))
    assert got.column("part").to_pylist() == sorted(got.column("part").to_pylist()) != []
    assert not (tmp_path / "ray" / folders.SHUFFLE).exists()


def _boom(path: str, p: int) -> list:
    raise ValueError(f"cannot read {path}")


def test_a_task_failing_three_times_names_step_input_and_error(tmp_path, ray_session):
    from wit.distributed import shuffle as sh

    refs = sh.run_tasks("test step", ["/data/in-0001.parquet"], _boom, ShuffleConfig(attempts=3))
    with pytest.raises(GlobalStepError) as err:
        list(sh.results("test step", refs))
    assert err.value.failure == {"step": "test step", "input": "/data/in-0001.parquet",
                                 "error": "ValueError('cannot read /data/in-0001.parquet')"}


def test_a_stage_task_failing_three_times_fails_the_stage_and_keeps_the_others(tmp_path, ray_session):
    from tests.helpers import make_candidates
    from tests.stages_for_tests import KeepEvenLength
    from wit.runners import run_stage

    inputs = make_candidates(tmp_path / "in", parts=3, rows=20)
    bad = tmp_path / "in" / "in-bad.parquet"
    bad.write_bytes(b"not parquet")
    inputs.insert(1, str(bad))
    out = tmp_path / "out"
    with pytest.raises(GlobalStepError) as err:
        run_stage(KeepEvenLength(), inputs, str(out), runner="ray", ledger_dir=str(tmp_path / "ledger"), workers=2)
    assert err.value.failure["input"] == str(bad) and "attempts" in err.value.failures[0]
    assert err.value.failures[0]["attempts"] == 3 and "Parquet" in err.value.failure["error"]
    assert sorted(p.name for p in (out / folders.MARKERS).iterdir()) == ["part-00000.json", "part-00002.json", "part-00003.json"]


def test_a_full_disk_under_the_shuffle_files_names_the_step_and_the_folder(tmp_path, ray_session):
    from tests.helpers import small_disk
    from wit.errors import StorageFull

    rng = np.random.default_rng(0)
    parts = []
    for p in range(3):  # ~640 kB of random hex uids each: the map files do not fit in 512 kB
        parts.append(str(tmp_path / "in" / f"part-{p:05d}.parquet"))
        folders.write_parquet(parts[-1], pa.table({"uid": [rng.bytes(16).hex() for _ in range(20_000)]}))
    with small_disk(tmp_path / "disk", "512k") as disk:
        with pytest.raises(StorageFull) as err:
            g.write_later_duplicates(parts, str(disk / "matched" / "_duplicates.parquet"), runner="ray",
                                     cfg=ShuffleConfig(partitions=3, attempts=1))
    msg = str(err.value)
    assert msg.startswith(f"match: uid duplicates: no space left on the disk of {disk / 'matched' / folders.SHUFFLE}")
    assert "MiB free there)" in msg and "\n" not in msg
