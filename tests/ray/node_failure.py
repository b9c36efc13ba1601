"""Run `match` on a 3-node simulated cluster, remove a worker node mid-stage, print the outcome as JSON.

Started by test_node_failure.py in its own process: a multi-node ``Cluster`` cannot share a process
with the session's ``ray.init``. Usage: ``python -m tests.ray.node_failure WORKDIR``.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

import pyarrow as pa


def main(work: Path) -> dict:
    import ray
    from ray.cluster_utils import Cluster

    from tests.helpers import make_candidates
    from wit.io import folders, ledger
    from wit.match.job import match_folder

    inputs = make_candidates(work / "in", parts=16, rows=3000)
    queries = str(work / "queries.parquet")
    entries = ["red", "blue", "photo", "the tree", "a dog", "house", "sun"]
    folders.write_parquet(queries, pa.table({"query_id": pa.array(range(len(entries)), pa.int32()), "query": entries,
                                             "source": ["t"] * len(entries), "score": [0.0] * len(entries)}))
    local = str(work / "local")
    match_folder(queries, inputs, local, ledger_dir=str(work / "ledger-local"), progress=False)

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    doomed = cluster.add_node(num_cpus=1)
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False)
    out, led = str(work / "ray"), str(work / "ledger-ray")
    result: dict = {}

    def run() -> None:
        try:
            result["report"] = match_folder(queries, inputs, out, runner="ray", ledger_dir=led, workers=3,
                                            progress=False)
        except Exception as err:  # noqa: BLE001 - reported to the test
            result["error"] = repr(err)

    t = threading.Thread(target=run)
    t.start()
    markers = Path(out) / folders.MARKERS
    deadline = time.time() + 300
    while time.time() < deadline and not (markers.is_dir() and any(markers.iterdir())) and t.is_alive():
        time.sleep(0.05)
    done_before = len(list(markers.iterdir())) if markers.is_dir() else -1
    cluster.remove_node(doomed)
    t.join(timeout=600)
    alive = sum(1 for n in ray.nodes() if n["Alive"])
    checks = ledger.reconcile(led, {"match": out}, runner="ray")
    same = all(folders.read_parquet([str(Path(local) / n)]).equals(folders.read_parquet([str(Path(out) / n)]))
               for n in sorted(p.name for p in Path(local).glob("*.parquet")))
    uids = folders.read_parquet([str(p) for p in sorted(Path(out).glob("part-*.parquet"))], columns=["uid"])
    ray.shutdown()
    cluster.shutdown()
    return {"error": result.get("error"), "tasks_done_before_removal": done_before, "tasks": len(inputs),
            "alive_nodes_after": alive, "ledger_ok": all(c.ok for c in checks.values()), "same_output": same,
            "rows": uids.num_rows, "distinct_uids": len(set(uids.column("uid").to_pylist()))}


if __name__ == "__main__":
    print("RESULT " + json.dumps(main(Path(sys.argv[1]))))
