"""A stage whose output disk fills up stops with one line naming the step, the folder and the space left."""

from __future__ import annotations


import numpy as np
import pyarrow as pa
import pytest

from tests.helpers import small_disk
from tests.stages_for_tests import KeepEvenLength
from wit import schemas
from wit.errors import StorageFull
from wit.io import folders
from wit.runners import run_stage


def test_a_full_output_disk_names_the_step_and_the_folder(tmp_path):
    with small_disk(tmp_path / "disk", "1m") as disk:
        rng = np.random.default_rng(0)
        inputs = []
        for p in range(6):  # ~300 kB of zstd-compressed hex per part: the fourth does not fit
            text = [rng.bytes(300).hex() for _ in range(1000)]
            uids = [f"{p}-{i:06d}" for i in range(1000)]
            inputs.append(str(tmp_path / "in" / f"part-{p:05d}.parquet"))
            folders.write_parquet(inputs[-1], pa.table({"uid": uids, "url": uids, "text": text, "page_url": uids,
                                                        "source": ["t"] * 1000}, schema=schemas.CANDIDATES))
        with pytest.raises(StorageFull) as err:
            run_stage(KeepEvenLength(), inputs, str(disk / "out"), runner="local", progress=False)
    msg = str(err.value)
    assert msg.startswith(f"evenlen: no space left on the disk of {disk / 'out'} (") and "MiB free there)" in msg
    assert "\n" not in msg and "rerun to resume" in msg
