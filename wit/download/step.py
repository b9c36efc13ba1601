"""Pipeline step `download`: the balanced URL list -> RUN/downloaded."""

from __future__ import annotations

import dataclasses

from wit.download.stage import DownloadStage
from wit.io import folders
from wit.runners import run_stage


def run_download(stage: DownloadStage, inputs: list[str], out: str, *, runner: str = "local",
                 address: str | None = None, progress: bool = True, **kw) -> dict:
    """``run_stage`` for the download, with the per-host limits shared by every worker on Ray.

    On the ray runner with ``host_limit: global`` the run's host brokers are started first and the
    stage looks them up by name; their counts come back under ``host_limit`` in the report.
    """
    pending = any(not folders.is_done(out, i) for i in range(len(inputs)))
    if runner != "ray" or stage.cfg.host_limit != "global" or not pending:
        return run_stage(stage, inputs, out, runner=runner, address=address, progress=progress, **kw).as_dict()
    from wit.download.hosts_ray import global_host_limit

    with global_host_limit(stage.cfg, address, progress) as limit:
        staged = dataclasses.replace(stage, host_brokers=limit.names)
        report = run_stage(staged, inputs, out, runner=runner, address=address, progress=progress, **kw).as_dict()
        report["host_limit"] = limit.stats()
    return report


def run_step(ctx) -> dict:
    stage = DownloadStage(cfg=ctx.spec.download)
    inputs = folders.expand(ctx.folder("balance"), (".parquet",))
    return run_download(stage, inputs, ctx.folder("download"), **ctx.runner_kwargs())
