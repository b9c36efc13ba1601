"""The Ray runner: tasks as rows of a Ray Data dataset, processed by a pool of stage actors.

This is the only module that imports ray for stages. Each actor builds its stage once
(``setup()``: automata, models) and runs the same ``run_task`` as the local runner, so the
output files are identical. Finished tasks are skipped before anything is scheduled.
"""

from __future__ import annotations

import json
import logging
import os
import warnings

from wit import console
from wit.io import folders
from wit.runners import settings
from wit.runners.task import release_memory, run_task
from wit.stage import WORKER_CPUS_ENV, Stage

log = logging.getLogger(__name__)


def ensure_ray(address: str | None = None, num_cpus: int | None = None, progress: bool = True,
               log_dir: str | None = None) -> None:
    """Connect to ``address`` (a cluster) or start/join a local Ray once per process; Ray's own log
    lines go to ``log_dir/ray.log`` (RUN/logs), not the terminal, where wit's own bar shows progress."""
    import ray

    if ray.is_initialized():
        console.route_ray_logs(log_dir)
        return
    console.quiet_ray_before_init()
    address = address or os.environ.get("RAY_ADDRESS")
    kwargs = dict(include_dashboard=False, log_to_driver=False, ignore_reinit_error=True,
                  logging_level=logging.WARNING)
    s = settings.current()
    if address:
        if s.object_store_memory or s.spill_dir or s.disk_full_fraction is not None:
            log.warning("ray: object_store_memory, spill_dir and disk_full_fraction apply when wit starts Ray; "
                        "a cluster takes them, and max_direct_call_object_size, from `ray start` "
                        "(docs/capacity.md)")
        ray.init(address=address, **kwargs)
    else:
        ray.init(num_cpus=num_cpus or os.cpu_count(), **start_options(s), **kwargs)
    try:
        from ray.data import DataContext

        ctx = DataContext.get_current()
        ctx.enable_progress_bars = False
        ctx.print_on_execution_start = False
    except Exception:  # noqa: BLE001 - progress settings are cosmetic
        pass
    console.route_ray_logs(log_dir)


def actor_options(stage: Stage, s: settings.RaySettings) -> dict:
    """Extra ``ray_remote_args`` of a stage's actors: a threaded stage's start with ``MALLOC_ARENA_MAX``
    (glibc reads it when a process starts; a running one keeps the arenas it has) unless this
    process's environment sets it, which Ray's workers inherit anyway. Only threaded stages: a Ray
    runtime env makes an actor start ~1 s later, and 2 arenas made the global steps' DuckDB and Arrow
    threads ~15 % slower (benchmarks/scale.py)."""
    if not stage.threaded or not s.malloc_arenas or os.environ.get("MALLOC_ARENA_MAX"):
        return {}
    return {"runtime_env": {"env_vars": {"MALLOC_ARENA_MAX": str(s.malloc_arenas)}}}


def start_options(s: settings.RaySettings) -> dict:
    """``ray.init`` keywords of a local Ray from the settings: object store size, spill folder, disk limit."""
    out: dict = {}
    if s.object_store_memory:
        out["object_store_memory"] = int(s.object_store_memory)
    system: dict = {"max_direct_call_object_size": int(s.max_inline_bytes)}
    if s.spill_dir:
        os.makedirs(s.spill_dir, exist_ok=True)
        system["object_spilling_config"] = json.dumps({"type": "filesystem",
                                                       "params": {"directory_path": s.spill_dir}})
    if s.disk_full_fraction is not None:
        system["local_fs_capacity_threshold"] = float(s.disk_full_fraction)
    out["_system_config"] = system
    return out


class _StageActor:
    def __init__(self, stage: Stage, out: str, ledger_dir: str | None):
        self.stage, self.out, self.ledger_dir = stage, out, ledger_dir
        os.environ[WORKER_CPUS_ENV] = str(stage.resources.cpus)  # what this actor reserved, not the node's
        stage.setup()

    def __call__(self, batch: dict) -> dict:
        stats = [self._attempt(int(i), str(p)) for i, p in zip(batch["index"], batch["path"])]
        release_memory()  # an actor runs many tasks: what one task freed goes back to the system
        return {"stats": [json.dumps(s) for s in stats]}

    def _attempt(self, index: int, path: str, attempts: int = 3) -> dict:
        """``run_task``, retried (its writes are idempotent); after the last failure, the failure as a
        value so the other tasks run on and keep their output."""
        for k in range(attempts):
            try:
                return run_task(self.stage, index, path, self.out, self.ledger_dir)
            except Exception as err:  # noqa: BLE001 - reported in the stage's stats and run.json
                log.warning("%s: task %d (%s) failed, attempt %d of %d: %r", self.stage.name, index, path, k + 1,
                            attempts, err)
                error = repr(err)
        return {"index": index, "failed": {"step": self.stage.name, "input": path, "error": error,
                                           "attempts": attempts}}


#: how many times the runner resumes a stage whose Ray workers were lost (a node gone, a process killed)
LOST_WORKER_ATTEMPTS = 3


def run_ray(stage: Stage, tasks: list[tuple[int, str]], out: str, ledger_dir: str | None, *,
            address: str | None = None, workers: int | None = None, progress: bool = True) -> list[dict]:
    """Run the tasks without a completion marker on a pool of stage actors.

    Actors are not restarted by Ray (a restart would rebuild them from constructor arguments that can be
    gone with a lost node); instead, when a worker is lost the runner starts a new pool for the tasks
    still without a marker, as a rerun of the command would: tasks are idempotent, so nothing is lost
    or written twice.
    """
    import ray
    import ray.data

    before = {i for i, _ in tasks if folders.is_done(out, i)}
    if len(before) == len(tasks):
        return [folders.read_json(folders.marker_url(out, i)) | {"skipped": True} for i, _ in tasks]
    ensure_ray(address, progress=progress, log_dir=console.run_log_dir(out, ledger_dir))
    fresh: dict[int, dict] = {}
    with console.StageBar(stage.name, len(tasks) - len(before), enabled=progress) as bar:
        for attempt in range(1, LOST_WORKER_ATTEMPTS + 1):
            pending = [(i, p) for i, p in tasks if i not in fresh and not folders.is_done(out, i)]
            if not pending:
                break
            try:
                for st in _run_pool(stage, pending, out, ledger_dir, workers):
                    fresh[int(st["index"])] = st
                    bar.task_done(st)
                break
            except ray.exceptions.RayError as err:
                from wit.distributed.shuffle import storage_error, storage_full

                if storage_error(err):
                    raise storage_full(stage.name, storage_error(err)) from err
                if attempt == LOST_WORKER_ATTEMPTS:
                    raise
                log.warning("%s: lost a Ray worker (%s); resuming the unfinished tasks (attempt %d of %d)",
                            stage.name, type(err).__name__, attempt + 1, LOST_WORKER_ATTEMPTS)
    out_stats = []
    for i, _ in tasks:
        if i in fresh:
            out_stats.append(fresh[i])
        elif folders.is_done(out, i):  # finished by a pool that was lost afterwards, or before this run
            out_stats.append(folders.read_json(folders.marker_url(out, i)) | {"skipped": i in before})
    return out_stats


def _run_pool(stage: Stage, pending: list[tuple[int, str]], out: str, ledger_dir: str | None,
              workers: int | None):
    """Yield each pending task's stats as a pool of stage actors finishes it."""
    import ray
    import ray.data

    cpus = int(ray.cluster_resources().get("CPU", 1))
    res = stage.resources
    n = max(1, min(workers or max(1, int(cpus // max(res.cpus, 1))), len(pending)))
    ds = ray.data.from_items([{"index": i, "path": p} for i, p in pending], override_num_blocks=len(pending))
    with warnings.catch_warnings():
        # max_restarts has no named parameter in Ray 2.60; the locked Ray still takes it this way.
        warnings.filterwarnings("ignore", message="`ray_remote_args` is deprecated")
        ds = ds.map_batches(
            _StageActor,
            fn_constructor_kwargs={"stage": stage, "out": out, "ledger_dir": ledger_dir},
            batch_size=1,
            compute=ray.data.ActorPoolStrategy(size=n),
            num_cpus=res.cpus,
            **({"num_gpus": res.gpus} if res.gpus else {}),
            **({"memory": res.memory} if res.memory else {}),
            max_restarts=0,
            **actor_options(stage, settings.current()),
        )
    for r in ds.iter_rows():
        yield json.loads(r["stats"])
