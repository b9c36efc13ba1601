"""open_clip image embeddings for duplicate detection, from a local checkpoint only.

The index and the dedupe stage build the same ``Embedder`` (the index records model name and
checkpoint in ``model.json``), so eval and candidate embeddings live in one space. Embeddings are
L2-normalised, so a dot product is the cosine similarity.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)


@dataclass
class Embedder:
    """An open_clip image tower with its eval transform; the model loads on first use (pickles cheaply)."""

    model_name: str
    checkpoint: str
    threshold: float = 0.95
    device: str = "auto"  # auto: cuda when torch sees one
    batch: int = 64
    _model: object = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not Path(self.checkpoint).is_file():
            raise FileNotFoundError(f"open_clip checkpoint not found: {self.checkpoint} (only local files load)")

    def _load(self) -> None:
        import open_clip
        import torch

        import wit.train.model  # noqa: F401 - registers wit's model configs with open_clip

        if self.model_name not in open_clip.list_models():
            raise ValueError(f"unknown open_clip model {self.model_name!r}")
        if self.device == "auto":
            self.device = "cuda" if torch.cuda.is_available() else "cpu"
        model, _, preprocess = open_clip.create_model_and_transforms(self.model_name, pretrained=self.checkpoint,
                                                                     device=self.device)
        model.eval()
        self._model, self._preprocess = model, preprocess
        log.info("dedupe embeddings: %s from %s on %s", self.model_name, self.checkpoint, self.device)

    @property
    def dim(self) -> int:
        if self._model is None:
            self._load()
        return int(self._model.visual.output_dim)

    def embed(self, images: list) -> np.ndarray:
        """(n, dim) float32 L2-normalised embeddings of PIL images."""
        import torch

        if self._model is None:
            self._load()
        out = [np.zeros((0, self.dim), np.float32)]
        with torch.no_grad():
            for a in range(0, len(images), self.batch):
                x = torch.stack([self._preprocess(im.convert("RGB")) for im in images[a:a + self.batch]])
                e = self._model.encode_image(x.to(self.device), normalize=True)
                out.append(e.float().cpu().numpy())
        return np.concatenate(out)

    def describe(self) -> dict:
        """What ``model.json`` records: enough to rebuild this embedder at dedupe time."""
        return {"model": self.model_name, "checkpoint": str(Path(self.checkpoint).resolve()),
                "threshold": self.threshold, "dim": self.dim}

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_model": None, "_preprocess": None}
