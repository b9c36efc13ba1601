"""Ray settings of this process: what a local Ray starts with and how the global steps shuffle.

Ray is initialised once per process, so its settings are too: the pipeline (the spec's ``ray:``
section) and the stage commands (``--object-store-memory``, ``--spill-dir``) call ``configure``
before the first step; ``wit.runners.ray.ensure_ray`` and the global steps read ``current()``.
No ray import here.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from wit.distributed.shuffle import ShuffleConfig


@dataclass(frozen=True)
class RaySettings:
    """``object_store_memory`` (bytes per node) and ``spill_dir`` apply when wit starts Ray itself; a
    cluster (``--address``) has them from ``ray start`` (docs/capacity.md). ``disk_full_fraction``: the
    share of the spill disk past which Ray refuses new objects (Ray's ``local_fs_capacity_threshold``)."""

    object_store_memory: int | None = None
    spill_dir: str | None = None
    disk_full_fraction: float | None = None
    #: task results up to this size go into the memory of the process that submitted the task (Ray's
    #: ``max_direct_call_object_size``, 100 KiB by default), larger ones into the object store. A
    #: shuffle's pieces are small and all owned by the driver, so Ray's default put a whole shuffle in
    #: the driver's memory (1.9 GB for the 16M-candidate ledger summary, docs/BENCHMARKS.md); 1 KiB
    #: keeps them in the object store, which spills to disk.
    max_inline_bytes: int = 1024
    #: glibc malloc arenas of a threaded stage's actors (``MALLOC_ARENA_MAX``; None: glibc's default of
    #: 8 per core). A download actor's 32 threads otherwise spread what they free over many arenas,
    #: which ``malloc_trim`` does not give back, and the actor grows with the tasks it has run
    #: (benchmarks/scale.py: download actors 1M -> 16M candidates 383-449 -> 655-672 MiB by default).
    malloc_arenas: int | None = 2
    shuffle: ShuffleConfig = field(default_factory=ShuffleConfig)


_current = RaySettings()


def configure(**changes) -> RaySettings:
    """Change this process's settings (before Ray starts, for the start-up ones); return them."""
    global _current
    _current = replace(_current, **changes)
    return _current


def current() -> RaySettings:
    return _current


def from_spec(ray_cfg) -> RaySettings:
    """Settings from a spec's ``ray:`` section (``wit.config.RayConfig``)."""
    return configure(object_store_memory=ray_cfg.object_store_memory, spill_dir=ray_cfg.spill_dir,
                     disk_full_fraction=ray_cfg.disk_full_fraction, max_inline_bytes=ray_cfg.max_inline_bytes,
                     malloc_arenas=ray_cfg.malloc_arenas,
                     shuffle=ShuffleConfig(partitions=ray_cfg.shuffle_partitions, attempts=ray_cfg.task_attempts,
                                           rows_per_partition=ray_cfg.rows_per_partition))


def limits_text() -> str:
    """The storage limits in force, for an exhaustion message."""
    s = _current
    parts = [f"object_store_memory={_gib(s.object_store_memory) if s.object_store_memory else 'Ray default'}",
             f"spill_dir={s.spill_dir or 'Ray default (/tmp/ray)'}"]
    if s.disk_full_fraction is not None:
        parts.append(f"disk_full_fraction={s.disk_full_fraction}")
    return ", ".join(parts)


def _gib(n: int) -> str:
    return f"{n / 2**30:.2f} GiB"
