"""`wit dedupe train-detector`: train the learned copy descriptor on CPU in minutes.

SSCD-style (Pizzi et al. 2022) at toy scale: every step takes ``batch`` photos, makes two strongly
edited views of each (crops, flips, rotations, perspective, skew, padding, overlays of text, shapes,
stripes and other photos, pasting onto another photo or a screenshot-like frame, meme bands, colour,
blur, noise, pixelation, JPEG) and pulls the two views of a photo together against all other views
(InfoNCE). A tenth of the photos is held out: their edited copies and the photos themselves calibrate
the cosine threshold to ``target_fpr`` and measure recall. The model is saved as TorchScript with the
threshold in its ``wit.json`` extra file, loadable by ``wit.dedupe.learned.CopyDescriptor``.
"""

from __future__ import annotations

import io
import json
import logging
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageOps

from wit.dedupe.learned import META, NEGATIVES, CopyDescriptor, _net, calibrate_threshold, negatives_file, needed_distractors

log = logging.getLogger(__name__)

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".webp", ".bmp")
WORK = 192  # source photos are held at this size: edits are cheap and the input is smaller still


@dataclass(frozen=True)
class TrainDetectorConfig:
    input_size: int = 96
    dim: int = 128
    width: int = 16
    steps: int = 2000  # ~8 min on 2 CPU cores; at 250 its false-positive rate missed 0.001 (docs/BENCHMARKS.md)
    batch: int = 32
    lr: float = 1e-3
    temperature: float = 0.1
    target_fpr: float = 0.001
    held_out: float = 0.1
    seed: int = 0
    threads: int = 0  # torch CPU threads; 0 leaves torch's default


def load_images(directory: str, limit: int | None = None) -> list[Image.Image]:
    """Every image under ``directory`` (sorted), RGB, shrunk to at most WORK px a side."""
    files = sorted(p for p in Path(directory).rglob("*") if p.suffix.lower() in IMAGE_EXTS and p.is_file())
    out = []
    for p in files[:limit]:
        try:
            im = Image.open(p)
            im.draft("RGB", (WORK, WORK))
            im = im.convert("RGB")
        except Exception:  # noqa: BLE001 - an unreadable file is skipped, as in the eval index
            log.warning("train-detector: skipping unreadable %s", p)
            continue
        im.thumbnail((WORK, WORK))
        out.append(im)
    return out


# --- edits: the strong augmentations (families of the AugLy suite, written for wit) --------------

def _colour(rng: random.Random) -> tuple[int, int, int]:
    return tuple(rng.randrange(256) for _ in range(3))


def _crop(im, rng):
    w, h = im.size
    s = rng.uniform(0.25, 0.95)
    a = rng.uniform(0.7, 1.4)
    cw, ch = max(8, min(w, int(w * s * a ** 0.5))), max(8, min(h, int(h * s / a ** 0.5)))
    x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
    return im.crop((x, y, x + cw, y + ch))


def _dihedral(im, rng):
    return im.transpose(rng.choice([Image.Transpose.FLIP_LEFT_RIGHT, Image.Transpose.FLIP_TOP_BOTTOM,
                                    Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_180,
                                    Image.Transpose.ROTATE_270, Image.Transpose.TRANSPOSE]))


def _rotate(im, rng):
    return im.rotate(rng.uniform(-180, 180), resample=Image.Resampling.BILINEAR, expand=rng.random() < 0.5,
                     fillcolor=_colour(rng) if rng.random() < 0.5 else (0, 0, 0))


def _perspective(im, rng):
    w, h = im.size
    d = rng.uniform(0.05, 0.3)
    src = [(rng.uniform(-d, d) * w + x, rng.uniform(-d, d) * h + y) for x, y in ((0, 0), (w, 0), (w, h), (0, h))]
    dst = [(0, 0), (w, 0), (w, h), (0, h)]
    a = []
    for (x, y), (u, v) in zip(dst, src):
        a.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        a.append([0, 0, 0, x, y, 1, -v * x, -v * y])
    coeffs = np.linalg.solve(np.array(a, float), np.array([c for p in src for c in p], float))
    return im.transform(im.size, Image.Transform.PERSPECTIVE, tuple(coeffs), Image.Resampling.BILINEAR)


def _skew(im, rng):
    k = rng.uniform(-0.6, 0.6)
    w, h = im.size
    if rng.random() < 0.5:
        return im.transform(im.size, Image.Transform.AFFINE, (1, k, -k * h / 2, 0, 1, 0), Image.Resampling.BILINEAR)
    return im.transform(im.size, Image.Transform.AFFINE, (1, 0, 0, k, 1, -k * w / 2), Image.Resampling.BILINEAR)


def _pad(im, rng):
    w, h = im.size
    if rng.random() < 0.4:
        s = max(w, h)
        out = Image.new("RGB", (s, s), _colour(rng))
        out.paste(im, ((s - w) // 2, (s - h) // 2))
        return out
    l, r, t, b = (int(rng.uniform(0, 0.5) * v) for v in (w, w, h, h))
    out = Image.new("RGB", (w + l + r, h + t + b), _colour(rng))
    out.paste(im, (l, t))
    return out


def _overlay_shapes(im, rng):
    im = im.copy()
    d = ImageDraw.Draw(im)
    w, h = im.size
    for _ in range(rng.randint(1, 4)):
        r = int(min(w, h) * rng.uniform(0.1, 0.35))
        x, y = rng.randint(0, w), rng.randint(0, h)
        d.ellipse((x - r, y - r, x + r, y + r), fill=_colour(rng))
        d.ellipse((x - r // 3, y - r // 3, x, y), fill=(0, 0, 0))
    return im


def _overlay_text(im, rng):
    im = im.copy()
    d = ImageDraw.Draw(im)
    w, h = im.size
    for _ in range(rng.randint(1, 5)):
        text = "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 ") for _ in range(rng.randint(4, 20)))
        d.text((rng.randint(0, w // 2), rng.randint(0, h - 10)), text, fill=_colour(rng),
               font_size=rng.randint(8, max(9, h // 5)))
    return im


def _stripes(im, rng):
    im = im.copy()
    d = ImageDraw.Draw(im)
    w, h = im.size
    n, col = rng.randint(3, 12), _colour(rng)
    thick = max(1, int(h / n * rng.uniform(0.1, 0.6)))
    for i in range(n):
        y = int(i * h / n)
        d.rectangle((0, y, w, y + thick), fill=col)
    return im


def _overlay_photo(im, rng, other):
    """``other`` (scaled) pasted onto ``im``, maybe translucent."""
    im = im.copy()
    w, h = im.size
    o = other.resize((max(4, int(w * rng.uniform(0.2, 0.5))), max(4, int(h * rng.uniform(0.2, 0.5)))))
    x, y = rng.randint(0, w - o.width), rng.randint(0, h - o.height)
    if rng.random() < 0.5:
        im.paste(o, (x, y))
    else:
        region = im.crop((x, y, x + o.width, y + o.height))
        im.paste(Image.blend(region, o, rng.uniform(0.3, 0.8)), (x, y))
    return im


def _onto_background(im, rng, other):
    """``im`` shrunk and pasted onto ``other`` (AugLy's overlay onto a background, masked composites)."""
    bg = other.resize((WORK, int(WORK * rng.uniform(0.6, 1.4))))
    s = rng.uniform(0.45, 0.9)
    fg = im.copy()
    fg.thumbnail((max(8, int(bg.width * s)), max(8, int(bg.height * s))))
    x, y = rng.randint(0, bg.width - fg.width), rng.randint(0, bg.height - fg.height)
    bg.paste(fg, (x, y))
    return bg


def _screenshot(im, rng):
    """``im`` inside a UI-like frame: bars, text lines and margins around it."""
    w = WORK
    h = int(w * rng.uniform(1.2, 2.0))
    out = Image.new("RGB", (w, h), (rng.randint(200, 255),) * 3)
    d = ImageDraw.Draw(out)
    d.rectangle((0, 0, w, int(h * 0.08)), fill=_colour(rng))
    fg = im.copy()
    fg.thumbnail((int(w * rng.uniform(0.6, 0.95)), int(h * 0.6)))
    y0 = int(h * rng.uniform(0.1, 0.3))
    out.paste(fg, ((w - fg.width) // 2, y0))
    for k in range(rng.randint(2, 6)):
        y = y0 + fg.height + 6 + 10 * k
        if y < h - 4:
            d.rectangle((8, y, int(w * rng.uniform(0.3, 0.9)), y + 4), fill=(90, 90, 90))
    return out


def _meme(im, rng):
    w, h = im.size
    band = int(h * rng.uniform(0.15, 0.4))
    out = Image.new("RGB", (w, h + band), (255, 255, 255) if rng.random() < 0.7 else _colour(rng))
    out.paste(im, (0, band))
    ImageDraw.Draw(out).text((4, band // 4), "WHEN THE COPY " * 2, fill=(0, 0, 0), font_size=max(8, band // 3))
    return out


def _split_shuffle(im, rng):
    """Tiles of the image put back in a shuffled order."""
    w, h = im.size
    n = rng.choice([2, 3])
    tiles = [im.crop((i * w // n, j * h // n, (i + 1) * w // n, (j + 1) * h // n)) for j in range(n) for i in range(n)]
    rng.shuffle(tiles)
    out = Image.new("RGB", (w, h))
    for k, t in enumerate(tiles):
        out.paste(t.resize((w // n, h // n)), ((k % n) * (w // n), (k // n) * (h // n)))
    return out


def _colour_edit(im, rng):
    op = rng.randrange(5)
    if op == 0:
        return ImageOps.grayscale(im).convert("RGB")
    if op == 1:
        im = ImageEnhance.Brightness(im).enhance(rng.uniform(0.4, 1.8))
        return ImageEnhance.Contrast(im).enhance(rng.uniform(0.4, 1.8))
    if op == 2:
        return ImageEnhance.Color(im).enhance(rng.uniform(0, 2.5))
    if op == 3:
        return Image.blend(im, Image.new("RGB", im.size, _colour(rng)), rng.uniform(0.1, 0.5))  # opacity
    return ImageOps.invert(im) if rng.random() < 0.2 else ImageOps.posterize(im, rng.randint(2, 5))


def _quality_edit(im, rng):
    op = rng.randrange(4)
    if op == 0:
        return im.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 3)))
    if op == 1:
        a = np.asarray(im, np.int16) + np.random.default_rng(rng.randrange(1 << 30)).normal(
            0, rng.uniform(5, 30), (im.height, im.width, 3)).astype(np.int16)
        return Image.fromarray(np.clip(a, 0, 255).astype(np.uint8))
    if op == 2:
        s = rng.uniform(0.1, 0.4)
        small = im.resize((max(2, int(im.width * s)), max(2, int(im.height * s))), Image.Resampling.BILINEAR)
        return small.resize(im.size, Image.Resampling.NEAREST)
    b = io.BytesIO()
    im.save(b, "JPEG", quality=rng.randint(5, 60))
    return Image.open(io.BytesIO(b.getvalue())).convert("RGB")


GEOMETRIC = (_crop, _dihedral, _rotate, _perspective, _skew, _pad, _split_shuffle)
OVERLAYS = (_overlay_shapes, _overlay_text, _stripes, _meme, _screenshot)
WITH_OTHER = (_overlay_photo, _onto_background)


def strong_view(im: Image.Image, rng: random.Random, others: list[Image.Image]) -> Image.Image:
    """One strongly edited copy of ``im``: up to two geometric edits, an overlay or composite with
    another photo (most of the time), colour and quality edits."""
    if rng.random() < 0.7:
        for f in rng.sample(GEOMETRIC, rng.choice([1, 1, 1, 2])):
            im = f(im, rng)
    r = rng.random()
    if r < 0.35:
        im = rng.choice(OVERLAYS)(im, rng)
    elif r < 0.65 and others:
        im = rng.choice(WITH_OTHER)(im, rng, rng.choice(others))
    if rng.random() < 0.6:
        im = _colour_edit(im, rng)
    if rng.random() < 0.5:
        im = _quality_edit(im, rng)
    return im


# --- training -------------------------------------------------------------------------------

@dataclass(frozen=True)
class TrainReport:
    images: int
    held_out: int
    steps: int
    seconds: float
    final_loss: float
    calibration: dict
    checkpoint: str


def _tensor(images: list[Image.Image], size: int):
    import torch

    arr = np.stack([np.asarray(im.convert("RGB").resize((size, size), Image.Resampling.BILINEAR)) for im in images])
    return torch.from_numpy(arr).permute(0, 3, 1, 2).float().div_(255.0)


def train_detector(images_dir: str, out: str, cfg: TrainDetectorConfig = TrainDetectorConfig(),
                   distractors_dir: str | None = None) -> TrainReport:
    """Train on the photos of ``images_dir``, calibrate on the held-out part (and ``distractors_dir``,
    whose photos only ever serve as negatives), save TorchScript to ``out``."""
    import torch

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    photos = load_images(images_dir)
    n_hold = max(1, int(len(photos) * cfg.held_out))
    if len(photos) - n_hold < 8:
        raise ValueError(f"train-detector needs at least {8 + n_hold} images in {images_dir}; found {len(photos)}")
    order = list(range(len(photos)))
    rng.shuffle(order)
    held = [photos[i] for i in order[:n_hold]]
    train = [photos[i] for i in order[n_hold:]]
    extra = load_images(distractors_dir) if distractors_dir else []
    need = needed_distractors(cfg.target_fpr)
    n_neg_per = max(1, -(-need // max(1, len(train) + len(extra))))
    if (len(train) + len(extra)) * n_neg_per < need:  # pragma: no cover - guarded by the ceil above
        raise ValueError("not enough distractors")
    net = _net(cfg.dim, cfg.width)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=cfg.steps, pct_start=0.1)
    b = min(cfg.batch, len(train))
    t0 = time.perf_counter()
    loss_v = float("nan")
    recent: list[float] = []
    net.train()
    for step in range(cfg.steps):
        idx = rng.sample(range(len(train)), b)
        views = [strong_view(train[i], rng, train) for i in idx] + [strong_view(train[i], rng, train) for i in idx]
        z = net(_tensor(views, cfg.input_size))
        sim = z @ z.T / cfg.temperature
        sim.fill_diagonal_(float("-inf"))
        target = torch.cat([torch.arange(b, 2 * b), torch.arange(0, b)])
        loss = torch.nn.functional.cross_entropy(sim, target)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        recent = (recent + [loss.item()])[-25:]
        loss_v = float(np.mean(recent))
        if step % 25 == 0 or step == cfg.steps - 1:
            log.info("train-detector: step %d/%d loss %.3f (mean of the last %d; chance %.2f) (%.0f s)", step + 1,
                     cfg.steps, loss_v, len(recent), np.log(2 * b - 1), time.perf_counter() - t0)
    net.eval()
    scripted = torch.jit.script(net)

    def embed(ims):
        with torch.no_grad():
            return np.concatenate([scripted(_tensor(ims[a:a + 128], cfg.input_size)).numpy()
                                   for a in range(0, len(ims), 128)])

    # Negatives never seen as references: edited copies of training photos and of the distractor photos,
    # against the held-out photos as the eval set; positives: edited copies of the held-out photos.
    crng = random.Random(cfg.seed + 1)
    pool = train + extra
    negatives = [strong_view(pool[k % len(pool)], crng, pool) if k >= len(pool) else pool[k]
                 for k in range(len(pool) * n_neg_per)]
    copies = [strong_view(im, crng, pool) for im in held]
    neg = embed(negatives)
    cal = calibrate_threshold(embed(held), neg, cfg.target_fpr, embed(copies))
    meta = {"format": "wit-copy-detector/1", "input_size": cfg.input_size, "normalizes": True, "dim": cfg.dim,
            "threshold": cal.threshold, "calibration": cal.as_dict(), "config": asdict(cfg),
            "trained_on": len(train)}
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    # The negatives travel with the model: an eval index recalibrates the threshold against its own images.
    torch.jit.save(scripted, out, _extra_files={META: json.dumps(meta), NEGATIVES: negatives_file(neg)})
    secs = time.perf_counter() - t0
    log.info("train-detector: %s, threshold %.4f (FPR %.4f, held-out recall %.3f) in %.0f s", out,
             cal.threshold, cal.fpr, cal.recall, secs)
    CopyDescriptor(out).embed(held[:1])  # the saved file loads
    return TrainReport(len(photos), n_hold, cfg.steps, round(secs, 1), round(loss_v, 4), cal.as_dict(), out)


def calibrate_checkpoint(checkpoint: str, images_dir: str, distractors_dir: str, out: str,
                         target_fpr: float = 0.001, seed: int = 0) -> dict:
    """Calibrate a TorchScript copy descriptor (wit's or a user's) and save it to ``out`` with the
    threshold in ``wit.json``: references = the photos of ``images_dir``, negatives = the photos of
    ``distractors_dir`` as they are, positives (for the recall figure) = edited copies of the references.
    Refuses, before embedding anything, with fewer distractors than ``needed_distractors(target_fpr)``."""
    import torch

    files = [p for p in Path(distractors_dir).rglob("*") if p.suffix.lower() in IMAGE_EXTS and p.is_file()]
    need = needed_distractors(target_fpr)
    if len(files) < need:
        raise ValueError(f"calibration to a false-positive rate of {target_fpr:g} needs at least {need} "
                         f"distractor images; {distractors_dir} holds {len(files)}")
    desc = CopyDescriptor(checkpoint)
    meta = dict(desc.meta)
    refs = load_images(images_dir)
    if not refs:
        raise ValueError(f"no reference images in {images_dir}")
    rng = random.Random(seed)
    copies = [strong_view(im, rng, refs) for im in refs]
    neg = desc.embed(load_images(distractors_dir))
    cal = calibrate_threshold(desc.embed(refs), neg, target_fpr, desc.embed(copies))
    meta.update(threshold=cal.threshold, calibration=cal.as_dict(), dim=desc.dim)
    meta.setdefault("input_size", desc.input_size)
    model = torch.jit.load(checkpoint, map_location="cpu")
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    torch.jit.save(model, out, _extra_files={META: json.dumps(meta), NEGATIVES: negatives_file(neg)})
    log.info("calibrate-detector: %s -> %s, threshold %.4f", checkpoint, out, cal.threshold)
    return {"checkpoint": out, **cal.as_dict()}
