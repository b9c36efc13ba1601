"""Balancing: MetaCLIP Algorithm 1 on 1M Zipf candidates, the hard cap, seeds and sharding."""

from __future__ import annotations

import json
import math

import numpy as np
import pyarrow as pa
import pytest

from wit import schemas
from wit.balance import algorithm
from wit.balance.job import balance_folder
from wit.io import folders, ledger
from wit.match.counts import entry_counts, part_files
from wit.records import unit_hash


def _zipf_rows(n: int, n_entries: int, seed: int, max_per_row: int = 1) -> pa.Table:
    rng = np.random.default_rng(seed)
    per = rng.integers(1, max_per_row + 1, n)
    flat = (rng.zipf(1.3, per.sum()) - 1) % n_entries
    offsets = np.concatenate(([0], np.cumsum(per))).astype(np.int32)
    lists = [sorted(set(flat[a:b].tolist())) for a, b in zip(offsets[:-1], offsets[1:])]
    return pa.table({
        "uid": pa.array([f"{i:032x}" for i in range(n)], pa.string()),
        "url": pa.array([f"http://z.test/{i}.jpg" for i in range(n)], pa.string()),
        "text": pa.array([""] * n, pa.string()),
        "page_url": pa.array([""] * n, pa.string()),
        "source": pa.array(np.where(np.arange(n) % 3 == 0, "wat", "warc").tolist(), pa.string()),
        "query_ids": pa.array(lists, pa.list_(pa.int32())),
    }, schema=schemas.MATCHED)


def _counts(qids: pa.ListArray) -> np.ndarray:
    flat = pa.compute.list_flatten(qids).to_numpy()
    return np.bincount(flat)


def test_metaclip_on_1m_zipf_candidates():
    t, n = 2000, 1_000_000
    rows = _zipf_rows(n, 5000, seed=0)
    qids = rows.column("query_ids").combine_chunks()
    before = _counts(qids)
    lookup = before.astype(np.int64)
    keep = algorithm.metaclip_keep(rows.column("uid").to_pylist(), qids, lookup, float(t), seed=7)
    after = np.bincount(pa.compute.list_flatten(qids.filter(pa.array(keep))).to_numpy(), minlength=len(before))
    tail = (before > 0) & (before <= t)
    head = before > t
    assert head.sum() >= 20 and tail.sum() >= 1000
    assert np.array_equal(after[tail], before[tail]), "a tail entry lost pairs"
    # One entry per row: a head entry's kept pairs are Binomial(count, t/count).
    sd = np.sqrt(t * (1 - t / before[head]))
    z = (after[head] - t) / sd
    assert np.all(np.abs(z) < 5.5), f"head entries outside binomial bounds: max |z| {np.abs(z).max():.1f}"
    assert abs(z.mean()) < 4 / math.sqrt(head.sum())
    # Same seed, same keep; another seed, another sample.
    again = algorithm.metaclip_keep(rows.column("uid").to_pylist()[:50_000], qids[:50_000], lookup, float(t), 7)
    assert np.array_equal(again, keep[:50_000])
    other = algorithm.metaclip_keep(rows.column("uid").to_pylist()[:50_000], qids[:50_000], lookup, float(t), 8)
    assert not np.array_equal(other, keep[:50_000])


def test_metaclip_with_several_entries_per_row_follows_the_definition():
    rows = _zipf_rows(20_000, 300, seed=1, max_per_row=3)
    qids = rows.column("query_ids").to_pylist()
    lookup = _counts(rows.column("query_ids").combine_chunks()).astype(np.int64)
    t = 150
    keep = algorithm.metaclip_keep(rows.column("uid").to_pylist(), rows.column("query_ids").combine_chunks(),
                                   lookup, float(t), 3)
    expected = [any(unit_hash(u, q, 3) < min(1.0, t / lookup[q]) for q in ids)
                for u, ids in zip(rows.column("uid").to_pylist(), qids)]
    assert keep.tolist() == expected


def _write_shards(table: pa.Table, folder, shards: int) -> str:
    folder.mkdir(parents=True)
    step = -(-table.num_rows // shards)
    for i in range(shards):
        folders.write_parquet(str(folder / folders.part_name(i)), table.slice(i * step, step))
    folders.write_parquet(str(folder / "entry_counts.parquet"), entry_counts(str(folder)))
    return str(folder)


def _kept(out: str) -> pa.Table:
    return folders.read_parquet(part_files(out)).sort_by("uid")


@pytest.mark.parametrize("mode", ["metaclip", "hardcap"])
def test_same_seed_same_result_under_any_sharding(tmp_path, mode):
    rows = _zipf_rows(30_000, 400, seed=2, max_per_row=3)
    results = []
    for shards in (1, 4):
        src = _write_shards(rows, tmp_path / f"m{shards}", shards)
        out = str(tmp_path / f"b{shards}")
        rep = balance_folder(src, out, t=200, oversample=1.5, mode=mode, seed=11,
                             counts_url=folders.join(src, "entry_counts.parquet"),
                             ledger_dir=str(tmp_path / f"l{shards}"), progress=False)
        assert rep["by_reason"] == {"balanced_out": rep["dropped"]} and rep["dropped"] > 0
        assert ledger.reconcile(str(tmp_path / f"l{shards}"), {"balance": out})["balance"].ok
        results.append(_kept(out))
    assert results[0].equals(results[1])
    stats = json.loads((tmp_path / "b4" / "balance_stats.json").read_text())
    assert stats["cap"] == 300 and stats["head_entries"] > 0
    assert stats["head_share_after"] < stats["head_share_before"]
    assert sum(stats["kept_per_source"].values()) == results[0].num_rows
    assert (tmp_path / "b4" / "balance_curve.png").stat().st_size > 1000


def test_hardcap_never_exceeds_t_and_keeps_small_entries_whole(tmp_path):
    rows = _zipf_rows(40_000, 500, seed=4, max_per_row=3)
    src = _write_shards(rows, tmp_path / "m", 3)
    t = 120
    balance_folder(src, str(tmp_path / "b"), t=t, mode="hardcap", seed=5,
                   counts_url=folders.join(src, "entry_counts.parquet"), progress=False)
    lookup = algorithm.count_lookup(folders.read_parquet([folders.join(src, "entry_counts.parquet")]))
    before = np.bincount(algorithm.attribute(rows.column("query_ids").combine_chunks(), lookup))
    kept = _kept(str(tmp_path / "b"))
    after = np.bincount(algorithm.attribute(kept.column("query_ids").combine_chunks(), lookup), minlength=len(before))
    assert after.max() <= t
    assert np.array_equal(after, np.minimum(before, t))


def test_final_pass_keeps_extra_columns_and_recounts(tmp_path):
    rows = _zipf_rows(5_000, 100, seed=6, max_per_row=2)
    rows = rows.append_column("jpg", pa.array([b"x"] * rows.num_rows, pa.binary()))
    src = tmp_path / "deduped"
    src.mkdir()
    folders.write_parquet(str(src / folders.part_name(0)), rows)
    out = str(tmp_path / "final")
    rep = balance_folder(str(src), out, t=50, name="balance_final", progress=False, ledger_dir=str(tmp_path / "l"))
    kept = _kept(out)
    assert "jpg" in kept.column_names and rep["stage"] == "balance_final"
    assert folders.read_parquet([folders.join(out, "_input_entry_counts.parquet")]).equals(entry_counts(str(src)))


def _survivors(table: pa.Table, rate: float, seed: int) -> pa.Table:
    """Rows a lossy download, filter and dedupe would leave: a coin per uid, independent of balance's."""
    keep = [unit_hash(u, "survives", seed) < rate for u in table.column("uid").to_pylist()]
    kept = table.filter(pa.array(keep))
    return kept.append_column("jpg", pa.array([b"x"] * kept.num_rows, pa.binary()))


def _uids(out: str) -> set[str]:
    return set(folders.read_parquet(part_files(out), columns=["uid"]).column("uid").to_pylist())


def test_two_passes_with_pool_counts_are_algorithm_1_on_the_pool(tmp_path):
    rows = _zipf_rows(40_000, 400, seed=8, max_per_row=3)
    src = _write_shards(rows, tmp_path / "matched", 3)
    pool_counts = folders.join(src, "entry_counts.parquet")
    t, seed = 150, 4
    balance_folder(src, str(tmp_path / "one"), t=t, seed=seed, counts_url=pool_counts, progress=False)
    one_pass = _uids(str(tmp_path / "one"))
    balance_folder(src, str(tmp_path / "first"), t=t, oversample=2.0, seed=seed, counts_url=pool_counts,
                   progress=False)
    first = _kept(str(tmp_path / "first"))
    assert one_pass < set(first.column("uid").to_pylist())

    survived = _survivors(first, 0.6, seed=1)
    deduped = tmp_path / "deduped"
    deduped.mkdir()
    folders.write_parquet(str(deduped / folders.part_name(0)), survived)
    ledger_dir = str(tmp_path / "ledger")
    balance_folder(str(deduped), str(tmp_path / "final"), t=t, seed=seed, counts_url=pool_counts,
                   name="balance_final", progress=False, ledger_dir=ledger_dir)
    final = _uids(str(tmp_path / "final"))
    expected = one_pass & set(survived.column("uid").to_pylist())
    assert final == expected and len(expected) > 1000
    assert ledger.reconcile(ledger_dir, {"balance_final": str(tmp_path / "final")})["balance_final"].ok
    assert "jpg" in _kept(str(tmp_path / "final")).column_names

    # Recounting over the survivors keeps more of the head than Algorithm 1 would.
    balance_folder(str(deduped), str(tmp_path / "recount"), t=t, seed=seed, name="balance_final", progress=False)
    recount = _uids(str(tmp_path / "recount"))
    assert recount > final
    stats = json.loads((tmp_path / "recount" / "balance_stats.json").read_text())
    assert stats["counts"] == "recount"
    stats = json.loads((tmp_path / "final" / "balance_stats.json").read_text())
    assert stats["counts"] == pool_counts and stats["matches_before"] == int(
        entry_counts(str(deduped)).column("count").to_numpy().sum())


def test_pipeline_final_step_uses_the_pool_counts_by_default(tmp_path):
    from wit.balance import step
    from wit.config import RunSpec
    from wit.pipeline import RunContext

    rows = _zipf_rows(8_000, 120, seed=9, max_per_row=2)
    run = tmp_path / "run"
    _write_shards(rows, run / "matched", 2)
    ctx = RunContext(RunSpec(balance={"t": 60, "oversample": 2.0}, balance_final={"t": 60}), str(run),
                     progress=False)
    assert ctx.spec.balance_final.counts == "pool"
    step.run_step(ctx.for_step("balance"))
    survived = _survivors(_kept(ctx.folder("balance")), 0.5, seed=2)
    (run / "deduped").mkdir()
    folders.write_parquet(str(run / "deduped" / folders.part_name(0)), survived)
    step.run_final_step(ctx.for_step("balance_final"))
    balance_folder(ctx.folder("match"), str(tmp_path / "one"), t=60, counts_url=None, progress=False)
    assert _uids(ctx.folder("balance_final")) == _uids(str(tmp_path / "one")) & set(survived.column("uid").to_pylist())


def test_cli_counts_and_recount(tmp_path, capsys):
    from wit.cli import main

    rows = _zipf_rows(6_000, 100, seed=10, max_per_row=2)
    src = _write_shards(rows, tmp_path / "matched", 1)
    deduped = tmp_path / "deduped"
    _write_shards(_survivors(rows, 0.5, seed=3), deduped, 1)
    assert main(["balance", "--matched", str(deduped), "--counts", folders.join(src, "entry_counts.parquet"),
                 "--t", "40", "--out", str(tmp_path / "final"), "--ledger", str(tmp_path / "l")]) == 0
    assert json.loads((tmp_path / "final" / "balance_stats.json").read_text())["counts"].endswith(
        "matched/entry_counts.parquet")
    assert "balance_final" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["balance", "--matched", str(deduped), "--counts", "x.parquet", "--recount", "--out", str(tmp_path / "o")])
    capsys.readouterr()
    assert main(["balance", "--matched", str(deduped), "--counts", str(tmp_path / "missing.parquet"),
                 "--out", str(tmp_path / "o")]) == 2
    assert "missing.parquet not found" in capsys.readouterr().err
