"""The same stage under the ray runner gives byte-for-byte the same tables as the local runner."""

from __future__ import annotations

import pytest

from tests.helpers import make_candidates
from tests.stages_for_tests import KeepEvenLength
from wit.io import folders, ledger
from wit.runners import run_stage

pytestmark = pytest.mark.ray


def test_ray_and_local_runner_give_identical_output(tmp_path, ray_session):
    inputs = make_candidates(tmp_path / "in", parts=4, rows=60)
    local = run_stage(KeepEvenLength(), inputs, str(tmp_path / "local"), ledger_dir=str(tmp_path / "l1"), progress=False)
    remote = run_stage(KeepEvenLength(), inputs, str(tmp_path / "ray"), runner="ray", ledger_dir=str(tmp_path / "l2"))
    assert remote.runner == "ray" and remote.tasks == 4
    assert (local.n_in, local.kept, local.dropped) == (remote.n_in, remote.kept, remote.dropped)
    for a, b in zip(folders.expand(str(tmp_path / "local"), (".parquet",)), folders.expand(str(tmp_path / "ray"), (".parquet",))):
        assert folders.read_parquet([a]).equals(folders.read_parquet([b]))
    assert ledger.reconcile(str(tmp_path / "l2"), {"evenlen": str(tmp_path / "ray")})["evenlen"].ok
    # A rerun on ray skips everything.
    again = run_stage(KeepEvenLength(), inputs, str(tmp_path / "ray"), runner="ray", ledger_dir=str(tmp_path / "l2"))
    assert again.skipped == 4



def test_a_threaded_stages_actors_start_with_the_configured_malloc_arenas(tmp_path, ray_session):
    import os

    import pyarrow.compute as pc

    from tests.stages_for_tests import ArenaProbe, UnthreadedArenaProbe

    inputs = make_candidates(tmp_path / "in", parts=2, rows=40)
    own = os.environ.get("MALLOC_ARENA_MAX")  # a user's own setting, which Ray's workers inherit
    for stage, want in ((ArenaProbe(), own or "2"), (UnthreadedArenaProbe(), own or "unset")):
        led = tmp_path / f"ledger-{stage.threaded}"
        run_stage(stage, inputs, str(tmp_path / f"out-{stage.threaded}"), runner="ray", ledger_dir=str(led))
        t = folders.read_parquet(folders.expand(str(led), (".parquet",)))
        assert set(t.filter(pc.equal(t.column("status"), "dropped")).column("detail").to_pylist()) == {want}
