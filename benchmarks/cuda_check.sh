#!/usr/bin/env bash
# The trainer's CUDA path on a GPU machine, in one go (a few minutes on one GPU):
#   1. benchmarks/train_throughput.py --device cuda (shards vs in-memory tensors, loader alone),
#      for wit-vit-tiny and ViT-B-32;
#   2. a 2-worker Ray Train run: `wit train --runner ray --workers 2 --device cuda` on rendered
#      shards (on a 1-GPU machine the two workers share the GPU over gloo).
# Logs and JSON land in $CHECK_OUT (default runs/cuda_check). Figures: docs/BENCHMARKS.md.
#     PY=.venv/bin/python bash benchmarks/cuda_check.sh
set -u -o pipefail
PY=${PY:-python3}
OUTDIR=${CHECK_OUT:-runs/cuda_check}
mkdir -p "$OUTDIR"
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUTDIR/gpu.txt"
"$PY" -c "import torch, ray, open_clip; print('torch', torch.__version__, 'ray', ray.__version__, 'open_clip', open_clip.__version__, 'cpus', __import__('os').cpu_count())" | tee -a "$OUTDIR/gpu.txt"
status=0
timeout 150 "$PY" benchmarks/train_throughput.py --device cuda --model wit-vit-tiny --batch-size 256 \
    --loader-workers 8 --steps 40 --repeats 3 2>&1 | tee "$OUTDIR/train_tiny.log" || status=1
timeout 150 "$PY" benchmarks/train_throughput.py --device cuda --model ViT-B-32 --batch-size 256 \
    --loader-workers 12 --steps 30 --repeats 2 2>&1 | tee "$OUTDIR/train_vitb32.log" || status=1
"$PY" -c "from wit.train import synthetic; synthetic.write_shards('$OUTDIR/shards', n_shards=8, per_shard=256, size=72)"
timeout 180 "$PY" -m wit train --shards "$OUTDIR/shards" --out "$OUTDIR/ray_train" --runner ray --workers 2 \
    --device cuda --model wit-vit-tiny --steps 60 --batch-size 128 --loader-workers 3 2>&1 \
    | tee "$OUTDIR/ray_train.log" || status=1
cp "$OUTDIR/ray_train/metrics.jsonl" "$OUTDIR/ray_metrics.jsonl" 2>/dev/null
exit $status
