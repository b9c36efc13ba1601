"""CLIP's objective: symmetric cross-entropy over the N x N cosine similarities of a global batch."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def gather_with_grad(x: torch.Tensor, world_size: int) -> torch.Tensor:
    """Concatenate ``x`` from every worker in rank order; gradients flow back to each worker's slice."""
    if world_size <= 1:
        return x
    import torch.distributed.nn.functional as dist_fn

    return torch.cat(dist_fn.all_gather(x), dim=0)


def clip_loss(image_features: torch.Tensor, text_features: torch.Tensor, logit_scale: torch.Tensor,
              rank: int = 0, world_size: int = 1) -> torch.Tensor:
    """Mean of image->text and text->image cross-entropy; positives are the matching (i, i) pairs.

    Features are L2-normalised here; ``logit_scale`` is the log inverse temperature. Each worker
    scores its local rows against the gathered global batch, so the loss equals single-process
    training on the concatenated batch (every worker must hold the same local batch size).
    """
    # In fp32 even under autocast: bf16 logits of up to 100 would carry errors near 0.5.
    with torch.autocast(image_features.device.type, enabled=False):
        image_features = F.normalize(image_features.float(), dim=-1)
        text_features = F.normalize(text_features.float(), dim=-1)
        all_images = gather_with_grad(image_features, world_size)
        all_texts = gather_with_grad(text_features, world_size)
        scale = logit_scale.float().exp()
        logits_per_image = scale * image_features @ all_texts.T
        logits_per_text = scale * text_features @ all_images.T
        n = image_features.shape[0]
        labels = torch.arange(n, device=image_features.device) + rank * n
        return 0.5 * (F.cross_entropy(logits_per_image, labels) + F.cross_entropy(logits_per_text, labels))
