"""Zero-shot classification as in CLIP: class-name prompts ensembled in embedding space.

A class's weight is the normalised mean of its normalised prompt embeddings (one per template);
an image's logits are its normalised embedding against those weights. Eval sets are ImageFolder
directories (root/<class>/<image>); class names and templates follow the CLIP_benchmark JSON
format of ../shared/data/eval_meta (dataset key -> list).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

DEFAULT_TEMPLATES = ("a photo of a {c}.",)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif")


def load_model(checkpoint_path: str, model_name: str, device: str = "cpu") -> tuple[torch.nn.Module, Callable, Callable]:
    """(model in eval mode, eval preprocess, tokenizer) for an open_clip checkpoint file."""
    from wit.train import model as wit_model

    bundle = wit_model.create(model_name, pretrained=checkpoint_path, device=device)
    return bundle.model.eval(), bundle.eval_transform, bundle.tokenizer


def load_templates(path: str | Path, dataset: str | None = None) -> list[str]:
    """Templates from a JSON list, or from a {dataset: [templates]} mapping (unknown key: the default)."""
    data = json.loads(Path(path).read_text())
    if isinstance(data, list):
        return [str(t) for t in data]
    if dataset and dataset in data:
        return list(data[dataset])
    return list(DEFAULT_TEMPLATES)


def load_classnames(path: str | Path, dataset: str | None = None) -> list[str] | dict[str, str]:
    """Class names from a JSON list, a {folder: name} mapping, or a {dataset: [names]} mapping."""
    data = json.loads(Path(path).read_text())
    if isinstance(data, dict) and dataset is not None:
        if dataset not in data:
            raise ValueError(f"{path} has no class names for {dataset!r}; it has {sorted(data)}")
        return list(data[dataset])
    return data


def _format(template: str, name: str) -> str:
    return template.replace("{c}", name) if "{c}" in template else template.format(name)


@torch.no_grad()
def build_classifier(model: torch.nn.Module, tokenizer: Callable, classnames: list[str],
                     templates: list[str] | tuple[str, ...] | None = None) -> torch.Tensor:
    """[embed_dim, n_classes] zero-shot weights: per class, the normalised mean prompt embedding."""
    templates = list(templates or DEFAULT_TEMPLATES)
    device = next(model.parameters()).device
    weights = []
    for name in classnames:
        tokens = tokenizer([_format(t, name) for t in templates]).to(device)
        emb = F.normalize(model.encode_text(tokens).float(), dim=-1).mean(dim=0)
        weights.append(F.normalize(emb, dim=0))
    return torch.stack(weights, dim=1)


@torch.no_grad()
def predict(model: torch.nn.Module, classifier: torch.Tensor, images: list[Image.Image], preprocess: Callable,
            batch_size: int = 256) -> np.ndarray:
    """[N, n_classes] logits (scaled cosine similarities) of ``images`` against ``classifier``."""
    device = next(model.parameters()).device
    scale = model.logit_scale.exp().float()
    out = []
    for i in range(0, len(images), batch_size):
        x = torch.stack([preprocess(im) for im in images[i: i + batch_size]]).to(device)
        feats = F.normalize(model.encode_image(x).float(), dim=-1)
        out.append((scale * feats @ classifier).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, classifier.shape[1]), dtype=np.float32)


def imagefolder(root: str | Path) -> tuple[list[str], list[tuple[str, int]]]:
    """(class folder names sorted, [(image path, class index)]) of an ImageFolder directory."""
    root = Path(root)
    classes = sorted(d.name for d in root.iterdir() if d.is_dir())
    if not classes:
        raise FileNotFoundError(f"no class folders in {root}")
    items = [(str(p), i) for i, c in enumerate(classes) for p in sorted((root / c).iterdir())
             if p.suffix.lower() in IMAGE_SUFFIXES]
    return classes, items


def evaluate_imagefolder(model: torch.nn.Module, preprocess: Callable, tokenizer: Callable, root: str | Path,
                         templates: list[str] | None = None,
                         classnames: list[str] | dict[str, str] | None = None, batch_size: int = 256) -> dict:
    """Top-1/top-5 accuracy on an ImageFolder set, with each image's prediction.

    Class names default to the folder names with '_' -> ' '; a list gives them in sorted-folder
    order, a dict maps folder -> name.
    """
    folders, items = imagefolder(root)
    if classnames is None:
        names = [f.replace("_", " ") for f in folders]
    elif isinstance(classnames, dict):
        names = [classnames.get(f, f.replace("_", " ")) for f in folders]
    else:
        if len(classnames) != len(folders):
            raise ValueError(f"{len(classnames)} class names for {len(folders)} class folders in {root}")
        names = list(classnames)
    classifier = build_classifier(model, tokenizer, names, templates)
    predictions = []
    k = min(5, len(names))
    top1 = top5 = 0
    for i in range(0, len(items), batch_size):
        chunk = items[i: i + batch_size]
        images = []
        for path, _ in chunk:
            with Image.open(path) as im:
                images.append(im.convert("RGB"))
        logits = predict(model, classifier, images, preprocess, batch_size)
        ranked = np.argsort(-logits, axis=1)[:, :k]
        for (path, label), top in zip(chunk, ranked):
            hit1, hitk = bool(top[0] == label), bool(label in top)
            top1 += hit1
            top5 += hitk
            predictions.append({"path": path, "label": int(label), "pred": int(top[0]),
                                "top5": [int(t) for t in top], "correct": hit1})
    n = len(items)
    return {"top1": top1 / n if n else 0.0, "top5": top5 / n if n else 0.0, "n": n,
            "classes": names, "chance": 1 / len(names), "predictions": predictions}
