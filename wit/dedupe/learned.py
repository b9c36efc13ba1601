"""A learned copy descriptor: a small CNN trained by wit (InfoNCE on strongly augmented views) and
saved as TorchScript, or a user's own TorchScript copy-detection model; one loader for both.

A checkpoint is one TorchScript file. wit's own carries ``wit.json`` (input size, whether the module
normalises its input itself, embedding size, calibrated cosine threshold) in its extra files; a foreign
one (e.g. an SSCD TorchScript export) gets ImageNet normalisation at ``DEFAULT_INPUT`` px and needs a
threshold given or calibrated (``calibrate_threshold``). Embeddings are L2-normalised: a dot product is
the cosine similarity.
"""

from __future__ import annotations

import io
import json
import logging
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

META = "wit.json"
NEGATIVES = "wit-negatives.npy"  # the calibration negatives' embeddings (float16), for index-time calibration
DEFAULT_INPUT = 224
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class CheckpointError(ValueError):
    """A detector checkpoint that does not load or does not fit the index (one line for the user)."""


def _net(dim: int, width: int):
    """Four stride-2 stages of two 3x3 convolutions, GeM pooling, a linear projection: 0.31M parameters
    at width 16, ~2 ms per 96-px image on a CPU, so it trains and runs without a GPU."""
    import torch
    from torch import nn

    def stage(cin: int, cout: int) -> nn.Sequential:
        return nn.Sequential(nn.Conv2d(cin, cout, 3, 2, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                             nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))

    class CopyNet(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            w = width
            self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
            self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
            self.features = nn.Sequential(stage(3, w), stage(w, 2 * w), stage(2 * w, 4 * w), stage(4 * w, 8 * w))
            self.p = nn.Parameter(torch.tensor(3.0))
            self.proj = nn.Linear(8 * w, dim)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            f = self.features((x - self.mean) / self.std)
            g = f.clamp(min=1e-6).pow(self.p).mean(dim=(2, 3)).pow(1.0 / self.p)  # GeM (SSCD's pooling)
            return nn.functional.normalize(self.proj(g), dim=1)

    return CopyNet()


@dataclass
class CopyDescriptor:
    """A TorchScript copy descriptor; loads on first use (pickles cheaply) and embeds PIL images."""

    checkpoint: str
    threshold: float | None = None  # None: the checkpoint's calibrated one (or the index's, see calibrate_to)
    device: str = "cpu"
    batch: int = 64
    _model: object = field(default=None, repr=False)
    _meta: dict = field(default_factory=dict, repr=False)
    _negatives: np.ndarray | None = field(default=None, repr=False)
    _given: bool = field(default=False, repr=False)  # the threshold came from the user
    _index_calibration: dict | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if not Path(self.checkpoint).is_file():
            raise CheckpointError(f"copy detector checkpoint not found: {self.checkpoint} (only local files load)")
        self._given = self.threshold is not None

    def _load(self) -> None:
        import torch

        extra = {META: "", NEGATIVES: ""}
        try:
            with warnings.catch_warnings():  # a damaged file's loader warning would repeat the one line below
                warnings.simplefilter("ignore")
                model = torch.jit.load(self.checkpoint, map_location=self.device, _extra_files=extra)
        except Exception as err:  # noqa: BLE001 - any loader failure is the same user error
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise CheckpointError(f"copy detector checkpoint {self.checkpoint} does not load as TorchScript: "
                                  f"{first}") from None
        model.eval()
        self._meta = json.loads(extra[META]) if extra[META] else {}
        if extra[NEGATIVES]:
            self._negatives = np.load(io.BytesIO(extra[NEGATIVES]), allow_pickle=False).astype(np.float32)
        self._model = model
        if self.threshold is None:
            self.threshold = self._meta.get("threshold")
        log.info("copy detector: %s (%s, %d px)", self.checkpoint,
                 "wit" if self._meta else "foreign TorchScript", self.input_size)

    @property
    def meta(self) -> dict:
        if self._model is None:
            self._load()
        return self._meta

    @property
    def input_size(self) -> int:
        return int(self._meta.get("input_size", DEFAULT_INPUT))

    @property
    def dim(self) -> int:
        if self._model is None:
            self._load()
        if "dim" not in self._meta:
            self._meta["dim"] = int(self.embed([_blank()]).shape[1])
        return int(self._meta["dim"])

    def tensor(self, images: list):
        """Images squashed to the square input (no crop: a copy's framing must not be lost), as a float
        batch in [0, 1], ImageNet-normalised for a foreign model."""
        import torch
        from PIL import Image

        s = self.input_size
        arr = np.stack([np.asarray(im.convert("RGB").resize((s, s), Image.Resampling.BILINEAR)) for im in images])
        x = torch.from_numpy(arr).permute(0, 3, 1, 2).float().div_(255.0)
        if not self._meta.get("normalizes", False):
            x = (x - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
        return x

    def embed(self, images: list) -> np.ndarray:
        """(n, dim) float32 L2-normalised embeddings of PIL images."""
        import torch

        if self._model is None:
            self._load()
        out = []
        with torch.no_grad():
            for a in range(0, len(images), self.batch):
                e = self._model(self.tensor(images[a:a + self.batch]).to(self.device))
                if isinstance(e, (tuple, list)):
                    e = e[0]
                out.append(torch.nn.functional.normalize(e.float().reshape(len(e), -1), dim=1).cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, self._meta.get("dim", 0)), np.float32)

    def calibrate_to(self, index_embeddings: np.ndarray) -> Calibration | None:
        """Set the threshold for an eval index of these embeddings, where the user gave none and the
        checkpoint carries its calibration negatives: the least cosine at which at most the
        checkpoint's ``target_fpr`` of the negatives have an index image at or above it, each
        negative's best similarity over *this* index being one trial, as in dedupe. The checkpoint's
        own threshold was measured against its few held-out references, and a negative's best
        similarity grows with the number of images it is compared with, so it does not carry over
        to an index of another size. None (threshold unchanged) otherwise."""
        if self._model is None:
            self._load()
        if self._given or self._negatives is None or not len(index_embeddings):
            return None
        target = float(self._meta.get("calibration", {}).get("target_fpr", 0.001))
        if len(self._negatives) < needed_distractors(target):
            log.warning("copy detector %s: %d calibration negatives, fewer than the %d a false-positive rate "
                        "of %g needs: keeping its own threshold %.4f", self.checkpoint, len(self._negatives),
                        needed_distractors(target), target, self.threshold)
            return None
        cal = calibrate_threshold(np.asarray(index_embeddings, np.float32), self._negatives, target)
        log.info("copy detector %s: threshold %.4f for this index of %d images (%d negatives, FPR %.4f; "
                 "the checkpoint's own %.4f)", self.checkpoint, cal.threshold, len(index_embeddings),
                 len(self._negatives), cal.fpr, self._meta.get("threshold", float("nan")))
        self.threshold = cal.threshold
        self._index_calibration = {**cal.as_dict(), "index_images": int(len(index_embeddings))}
        return cal

    def describe(self) -> dict:
        """What the index's ``model.json`` records to rebuild this descriptor at dedupe time."""
        if self._model is None:
            self._load()
        if self.threshold is None:
            raise CheckpointError(f"copy detector {self.checkpoint} has no calibrated threshold: give "
                                  "--embed-threshold, or calibrate it (wit dedupe train-detector)")
        out = {"kind": "torchscript", "model": "torchscript", "checkpoint": str(Path(self.checkpoint).resolve()),
               "threshold": float(self.threshold), "dim": self.dim}
        if self._index_calibration:
            out["index_calibration"] = self._index_calibration
        return out

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_model": None}


def negatives_file(embeddings: np.ndarray) -> bytes:
    """The ``NEGATIVES`` extra file of a checkpoint: the calibration negatives' embeddings."""
    buf = io.BytesIO()
    np.save(buf, np.asarray(embeddings, np.float16), allow_pickle=False)
    return buf.getvalue()


def _blank():
    from PIL import Image

    return Image.new("RGB", (DEFAULT_INPUT, DEFAULT_INPUT), (127, 127, 127))


# --- calibration ------------------------------------------------------------------------------

def needed_distractors(target_fpr: float) -> int:
    """Distractors needed to vouch for ``target_fpr``: 3 / rate (the rule of three: with no false match
    among that many, the 95 % upper bound of the rate is ``target_fpr``)."""
    return int(math.ceil(3 / target_fpr - 1e-9))


@dataclass(frozen=True)
class Calibration:
    """The cosine threshold and what it was measured on."""

    threshold: float
    target_fpr: float
    fpr: float  # measured on the held-out distractor pairs
    recall: float  # of the held-out augmented copies
    distractors: int

    def as_dict(self) -> dict:
        return {"threshold": round(self.threshold, 5), "target_fpr": self.target_fpr, "fpr": round(self.fpr, 5),
                "recall": round(self.recall, 4), "distractors": self.distractors}


def calibrate_threshold(reference: np.ndarray, distractors: np.ndarray, target_fpr: float = 0.001,
                        copies: np.ndarray | None = None) -> Calibration:
    """The least cosine threshold at which at most ``target_fpr`` of distractors have a reference image
    at or above it (each distractor's best similarity to the references is one trial, as in dedupe).

    ``copies`` (optional, row i a copy of reference i) gives the recall at that threshold. Refuses
    (``ValueError``) with fewer than ``needed_distractors(target_fpr)`` distractors.
    """
    need = needed_distractors(target_fpr)
    if len(distractors) < need:
        raise ValueError(f"calibration to a false-positive rate of {target_fpr:g} needs at least {need} "
                         f"distractor images; {len(distractors)} given")
    best = (distractors @ reference.T).max(axis=1)
    k = int(math.floor(target_fpr * len(best)))  # false matches allowed
    order = np.sort(best)[::-1]
    thr = float(np.nextafter(order[k], np.float32(2))) if k < len(order) else float(order[-1])
    fpr = float((best >= thr).mean())
    recall = float(((copies * reference).sum(1) >= thr).mean()) if copies is not None and len(copies) else float("nan")
    return Calibration(thr, target_fpr, fpr, recall, len(distractors))
