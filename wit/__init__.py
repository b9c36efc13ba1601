"""wit: build CLIP-style web-scale image-text datasets (the WIT recipe) and prove what is in them."""

import os

__version__ = "0.1.0"

# albumentations (imported by img2dataset) checks PyPI for updates on import and warns on every command.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
