"""wit: build CLIP-style web-scale image-text datasets (the WIT recipe) and prove what is in them."""

__version__ = "0.1.0"
