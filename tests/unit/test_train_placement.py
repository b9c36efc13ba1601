"""Ray Train worker placement: GPUs per worker and the process-group backend (no Ray needed)."""

from __future__ import annotations

import pytest

from wit.train.ray_train import placement


@pytest.mark.parametrize("device,workers,gpus,expected", [
    ("cpu", 2, 8, (0.0, "gloo")),        # asked for CPU: no GPU even where there are some
    ("auto", 2, 0, (0.0, "gloo")),       # no GPU in the cluster
    ("cuda", 2, 0, (0.0, "gloo")),       # fit() turns this into a one-line error
    ("auto", 2, 2, (1.0, "nccl")),       # one GPU each
    ("cuda", 2, 4, (1.0, "nccl")),
    ("cuda", 2, 1, (0.5, "gloo")),       # two workers share one GPU; NCCL refuses two ranks on one device
    ("auto", 4, 2, (0.5, "gloo")),
    ("cuda", 3, 1, (1 / 3, "gloo")),
    ("cuda", 3, 2, (0.5, "gloo")),       # 2 per GPU: three workers fit on two GPUs
    ("auto", 2, 0.5, (0.0, "gloo")),     # a fraction of a GPU is not shared further
])
def test_placement(device, workers, gpus, expected):
    share, backend = placement(device, workers, gpus)
    assert share == pytest.approx(expected[0]) and backend == expected[1]


def test_cuda_without_gpus_is_one_line(monkeypatch, tmp_path):
    pytest.importorskip("ray")
    import ray

    from wit.train import ray_train
    from wit.train.loop import TrainJob

    monkeypatch.setattr("wit.runners.ray.ensure_ray", lambda address=None: None)
    monkeypatch.setattr(ray, "cluster_resources", lambda: {"CPU": 2.0})
    job = TrainJob(("x.tar",), str(tmp_path), device="cuda")
    with pytest.raises(ValueError, match="no GPU for its 2 workers"):
        ray_train.fit(job, 2)
