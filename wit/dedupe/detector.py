"""Which embedding model a copy detector uses, from the option a user gives or the index records.

``--checkpoint PATH`` alone is a TorchScript copy descriptor (wit's own from ``wit dedupe
train-detector``, or a user's ISC/SSCD-style export); with ``--model NAME`` it is an open_clip
checkpoint. The eval index's ``model.json`` records which, so dedupe and the overlap analysis rebuild
the same descriptor with the same threshold.
"""

from __future__ import annotations

import logging

from wit.dedupe.learned import CheckpointError, CopyDescriptor

log = logging.getLogger(__name__)

OPEN_CLIP_THRESHOLD = 0.95


def make_embedder(model: str | None, checkpoint: str | None, threshold: float | None = None, batch: int = 64):
    """An embedder for ``checkpoint`` (None without one: embeddings off, nothing is downloaded).

    No ``model``: a TorchScript copy descriptor whose threshold is ``threshold`` or, when None, the one
    calibrated into the checkpoint. With ``model``: an open_clip checkpoint (threshold default 0.95).
    """
    if not checkpoint:
        log.info("eval index: embeddings off (no checkpoint given; nothing is downloaded)")
        return None
    if not model or model == "torchscript":
        return CopyDescriptor(checkpoint, threshold=threshold, batch=batch)
    from wit.dedupe.embed import Embedder

    return Embedder(model, checkpoint, threshold=OPEN_CLIP_THRESHOLD if threshold is None else threshold, batch=batch)


def embedder_for_index(model_json: dict, batch: int = 64, dim: int | None = None):
    """The embedder an index was built with (its ``model.json``); with ``dim``, checked to give
    embeddings of that size (``CheckpointError`` otherwise, one line)."""
    kind = model_json.get("kind", "open_clip")
    emb = make_embedder(None if kind == "torchscript" else model_json["model"], model_json["checkpoint"],
                        model_json.get("threshold"), batch=batch)
    if dim is not None:
        check_dim(emb, dim)
    return emb


def check_dim(embedder, dim: int) -> None:
    """Refuse a checkpoint whose embeddings are not ``dim`` wide (the index's)."""
    got = embedder.dim
    if got != dim:
        raise CheckpointError(f"copy detector {embedder.checkpoint} gives {got}-d embeddings but the eval index "
                              f"holds {dim}-d ones: rebuild the index with this checkpoint or use the index's")
