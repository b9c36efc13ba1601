"""The spec's ``ray:`` section and the Ray storage flags reach ``ray.init`` and the global steps' shuffles."""

from __future__ import annotations

import json

import pytest

from wit.cli import build_parser
from wit.cli_args import apply_ray_flags
from wit.config import ConfigError, RunSpec, load_yaml
from wit.distributed import shuffle as sh
from wit.runners import settings


@pytest.fixture(autouse=True)
def _fresh_settings(monkeypatch):
    monkeypatch.setattr(settings, "_current", settings.RaySettings())


def test_spec_ray_section_sets_start_options_and_shuffle(tmp_path):
    from wit.runners.ray import start_options

    spec = tmp_path / "spec.yaml"
    spill = tmp_path / "spill"
    spec.write_text(f"ray:\n  object_store_memory: 2GiB\n  spill_dir: {spill}\n  disk_full_fraction: 0.9\n"
                    "  shuffle_partitions: 12\n  rows_per_partition: 500000\n  task_attempts: 5\n")
    s = settings.from_spec(load_yaml(spec, RunSpec).ray)
    opts = start_options(s)
    assert opts["object_store_memory"] == 2 * 2**30
    assert json.loads(opts["_system_config"]["object_spilling_config"]) == {
        "type": "filesystem", "params": {"directory_path": str(spill)}}
    assert opts["_system_config"]["local_fs_capacity_threshold"] == 0.9 and spill.is_dir()
    assert opts["_system_config"]["max_direct_call_object_size"] == 1024
    assert sh.resolve(None) == sh.ShuffleConfig(partitions=12, attempts=5, rows_per_partition=500_000)
    assert "object_store_memory=2.00 GiB" in settings.limits_text()


def test_defaults_leave_ray_its_own_settings():
    from wit.runners.ray import start_options

    # only the inline limit: shuffle pieces go to the object store, not the driver's memory
    assert start_options(settings.from_spec(RunSpec().ray)) == {"_system_config": {"max_direct_call_object_size": 1024}}
    assert sh.resolve(None) == sh.ShuffleConfig()


def test_storage_flags_of_a_stage_command(tmp_path):
    args = build_parser().parse_args(["match", "--queries", "q", "--candidates", "c", "--out", "o", "--runner", "ray",
                                      "--object-store-memory", "4GB", "--spill-dir", str(tmp_path)])
    apply_ray_flags(args)
    assert settings.current().object_store_memory == 4_000_000_000 and settings.current().spill_dir == str(tmp_path)
    bad = build_parser().parse_args(["match", "--queries", "q", "--candidates", "c", "--out", "o",
                                     "--object-store-memory", "lots"])
    with pytest.raises(ConfigError, match="object_store_memory"):
        apply_ray_flags(bad)


def test_map_tasks_group_small_inputs_to_bound_the_shuffle_pieces():
    assert sh.map_groups(list("abcde"), [5, 5, 20, 1, 1], 10) == [("a", "b"), ("c",), ("d", "e")]
    assert sh.map_groups(["x"], [0], 10) == [("x",)] and sh.map_groups([], [], 10) == []


def test_threaded_stages_actors_get_two_malloc_arenas_unless_the_environment_says_otherwise(tmp_path, monkeypatch):
    from tests.stages_for_tests import ArenaProbe, KeepEvenLength
    from wit.download.stage import DownloadStage
    from wit.runners.ray import actor_options

    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    assert DownloadStage.threaded and not KeepEvenLength.threaded
    assert actor_options(ArenaProbe(), settings.current()) == {"runtime_env": {"env_vars": {"MALLOC_ARENA_MAX": "2"}}}
    assert actor_options(KeepEvenLength(), settings.current()) == {}
    spec = tmp_path / "spec.yaml"
    spec.write_text("ray:\n  malloc_arenas: null\n")
    assert actor_options(ArenaProbe(), settings.from_spec(load_yaml(spec, RunSpec).ray)) == {}
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")  # the workers inherit the user's own setting
    assert actor_options(ArenaProbe(), settings.RaySettings()) == {}
