"""The download job: a balanced URL list -> a folder of images (or a reason per URL); `wit download` and the step call it."""

from __future__ import annotations

from wit.download.stage import DownloadStage
from wit.runners import run_stage


def run_download(stage: DownloadStage, inputs: list[str], out: str, **runner_kwargs) -> dict:
    """``run_stage`` for the download; on Ray with ``host_limit: global`` its hook shares per-host limits.

    The brokers' counts come back under ``host_limit`` in the report.
    """
    return run_stage(stage, inputs, out, **runner_kwargs).as_dict()
