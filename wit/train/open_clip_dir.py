"""Export one of wit's model configs as an open_clip ``local-dir:`` folder.

open_clip's own trainer knows only open_clip's model names; ``--model local-dir:DIR`` makes it
build any config written as ``DIR/open_clip_config.json``. Usage::

    python -m wit.train.open_clip_dir wit-vit-tiny runs/wit-vit-tiny
    python -m open_clip_train.main --model local-dir:runs/wit-vit-tiny --dataset-type webdataset ...
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from wit.train.model import CONFIG_DIR, wit_model_names

log = logging.getLogger(__name__)

# open_clip's default (OpenAI CLIP) normalisation, written out so the folder is self-contained.
PREPROCESS = {"mean": [0.48145466, 0.4578275, 0.40821073], "std": [0.26862954, 0.26130258, 0.27577711],
              "interpolation": "bicubic", "resize_mode": "shortest"}


def export(name: str, out: str | Path) -> Path:
    """Write ``out/open_clip_config.json`` for wit's config ``name``; return the folder."""
    if name not in wit_model_names():
        raise ValueError(f"unknown wit model config {name!r}; have {', '.join(wit_model_names())}")
    cfg = json.loads((CONFIG_DIR / f"{name}.json").read_text())
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    pre = {**PREPROCESS, "size": cfg["vision_cfg"]["image_size"]}
    (folder / "open_clip_config.json").write_text(json.dumps({"model_cfg": cfg, "preprocess_cfg": pre}, indent=2))
    return folder


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m wit.train.open_clip_dir", description=__doc__.splitlines()[0])
    p.add_argument("name", help=f"one of {', '.join(wit_model_names())}")
    p.add_argument("out", help="folder to write open_clip_config.json into")
    args = p.parse_args(argv)
    try:
        folder = export(args.name, args.out)
    except ValueError as err:
        print(f"wit: error: {err}", file=sys.stderr)
        return 2
    sys.stdout.write(f"local-dir:{folder}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
