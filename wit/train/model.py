"""Models, tokenizers and image transforms from open_clip, plus wit's small CPU-sized configs.

Importing this module registers the JSON configs in ``wit/train/model_configs`` with open_clip,
so ``open_clip.create_model("wit-vit-tiny")`` works next to the standard names (ViT-B-32, ...).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import open_clip
import torch
from torchvision import transforms as T

CONFIG_DIR = Path(__file__).parent / "model_configs"
# CLIP initialises the temperature to 0.07 and clamps the logit scale at 100.
INIT_LOGIT_SCALE = math.log(1 / 0.07)
MAX_LOGIT_SCALE = math.log(100)


def register_configs() -> None:
    """Make wit's model configs known to open_clip (idempotent)."""
    if not set(wit_model_names()) <= set(open_clip.list_models()):
        open_clip.add_model_config(CONFIG_DIR)


def wit_model_names() -> list[str]:
    return sorted(p.stem for p in CONFIG_DIR.glob("*.json"))


register_configs()


@dataclass
class ModelBundle:
    """A model with what feeds it: train/eval image transforms and the tokenizer."""

    model: torch.nn.Module
    train_transform: Callable
    eval_transform: Callable
    tokenizer: Callable
    image_size: int

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 [N, 3, H, W] from ``train_transform`` -> the model's normalised float input (on their device)."""
        return normalize(images, self.model)


def _mean_std(model: torch.nn.Module) -> tuple[tuple, tuple]:
    cfg = getattr(model.visual, "preprocess_cfg", {}) or {}
    return (tuple(cfg.get("mean", open_clip.OPENAI_DATASET_MEAN)), tuple(cfg.get("std", open_clip.OPENAI_DATASET_STD)))


def image_transforms(model: torch.nn.Module) -> tuple[Callable, Callable]:
    """(train, eval) transforms: resize the short side, then a random (train) or centre (eval) square crop.

    The train transform stops at a uint8 tensor: loader workers ship 4x fewer bytes and the
    normalisation runs once per batch on the training device (``normalize``).
    """
    size = image_size(model)
    mean, std = _mean_std(model)
    resize = T.Resize(size, interpolation=T.InterpolationMode.BICUBIC)
    # The only augmentation, as in CLIP: a random square crop of the resized image.
    train = T.Compose([_to_rgb, resize, T.RandomCrop(size, pad_if_needed=True), T.PILToTensor()])
    evaluate = T.Compose([resize, T.CenterCrop(size), _to_rgb, T.ToTensor(), T.Normalize(mean=mean, std=std)])
    return train, evaluate


def normalize(images: torch.Tensor, model: torch.nn.Module) -> torch.Tensor:
    mean, std = _mean_std(model)
    mean_t = torch.tensor(mean, device=images.device).view(1, 3, 1, 1)
    std_t = torch.tensor(std, device=images.device).view(1, 3, 1, 1)
    return (images.float() / 255 - mean_t) / std_t


def image_size(model: torch.nn.Module) -> int:
    size = model.visual.image_size
    return int(size[0] if isinstance(size, (tuple, list)) else size)


def _to_rgb(image):
    return image.convert("RGB") if image.mode != "RGB" else image


class _DropFreshInitNotice(logging.Filter):
    """open_clip warns that a model without pretrained weights starts random: wit's training asks for that."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("No pretrained weights loaded")


def create(name: str, pretrained: str | None = None, device: str | torch.device = "cpu") -> ModelBundle:
    """Build ``name`` with fresh weights, or from a local checkpoint file (never a download)."""
    if pretrained is not None and not Path(pretrained).is_file():
        raise FileNotFoundError(f"checkpoint not found: {pretrained} (only local checkpoints are loaded)")
    if name not in open_clip.list_models():
        raise ValueError(f"unknown model {name!r}; wit configs: {wit_model_names()}, or any open_clip name")
    fresh = _DropFreshInitNotice()
    logging.getLogger().addFilter(fresh)  # open_clip logs it on the root logger
    try:
        model = open_clip.create_model(name, pretrained=pretrained, device=device)
    finally:
        logging.getLogger().removeFilter(fresh)
    if pretrained is None:
        with torch.no_grad():
            model.logit_scale.fill_(INIT_LOGIT_SCALE)
    train_tf, eval_tf = image_transforms(model)
    return ModelBundle(model, train_tf, eval_tf, open_clip.get_tokenizer(name), image_size(model))


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """AdamW groups: decoupled weight decay on weight matrices only, none on gains, biases and the temperature."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        exclude = p.ndim < 2 or "bn" in name or "ln" in name or "bias" in name or "logit_scale" in name
        (no_decay if exclude else decay).append(p)
    return [{"params": no_decay, "weight_decay": 0.0}, {"params": decay, "weight_decay": weight_decay}]
