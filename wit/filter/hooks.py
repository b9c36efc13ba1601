"""Model hooks of the filter: CLIP image-text score and an NSFW head over CLIP image embeddings.

Both take a local model file and are off without one (``status()`` says so); nothing is
downloaded. ``clip_model`` is ``ARCH:CHECKPOINT`` (an open_clip architecture and a local
checkpoint); ``nsfw_model`` is a TorchScript module mapping L2-normalised CLIP image embeddings
(N, D) to an NSFW probability (N,) or (N, 1), like LAION's CLIP-based safety classifier.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

from wit.config import FilterConfig


@dataclass
class Hooks:
    cfg: FilterConfig
    model: object = None
    preprocess: object = None
    tokenizer: object = None
    nsfw: object = None

    @property
    def active(self) -> bool:
        return self.model is not None

    def status(self) -> list[str]:
        clip = f"clip_score: on ({self.cfg.clip_model}, min {self.cfg.clip_min_score})" if self.model \
            else "clip_score: off (no clip_model given)"
        nsfw = f"nsfw: on ({self.cfg.nsfw_model}, max {self.cfg.nsfw_max_score})" if self.nsfw \
            else "nsfw: off (no nsfw_model given)" if not self.cfg.nsfw_model else "nsfw: off (needs clip_model)"
        return [clip, nsfw]

    def judge(self, rows: list[dict]) -> list[str]:
        """A reason ("nsfw", "clip_score_low") or "" per row."""
        import torch
        from PIL import Image

        with torch.no_grad():
            imgs = torch.stack([self.preprocess(Image.open(io.BytesIO(r["jpg"])).convert("RGB")) for r in rows])
            img_emb = self.model.encode_image(imgs)
            img_emb = img_emb / img_emb.norm(dim=-1, keepdim=True)
            txt_emb = self.model.encode_text(self.tokenizer([r["text"] or "" for r in rows]))
            txt_emb = txt_emb / txt_emb.norm(dim=-1, keepdim=True)
            scores = (img_emb * txt_emb).sum(-1).tolist()
            p_nsfw = self.nsfw(img_emb).reshape(-1).tolist() if self.nsfw is not None else [0.0] * len(rows)
        return ["nsfw" if p >= self.cfg.nsfw_max_score else "clip_score_low" if s < self.cfg.clip_min_score else ""
                for s, p in zip(scores, p_nsfw)]


def load_hooks(cfg: FilterConfig) -> Hooks:
    hooks = Hooks(cfg)
    if not cfg.clip_model:
        return hooks
    import open_clip
    import torch

    arch, sep, ckpt = cfg.clip_model.partition(":")
    if not sep or not ckpt:
        raise ValueError(f"filter.clip_model wants ARCH:CHECKPOINT (a local file), got {cfg.clip_model!r}")
    hooks.model, _, hooks.preprocess = open_clip.create_model_and_transforms(arch, pretrained=ckpt)
    hooks.model.eval()
    hooks.tokenizer = open_clip.get_tokenizer(arch)
    if cfg.nsfw_model:
        hooks.nsfw = torch.jit.load(cfg.nsfw_model, map_location="cpu").eval()
    return hooks
