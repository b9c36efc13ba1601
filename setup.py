"""Build of the C extensions; the rest of the package metadata is in pyproject.toml.

All are optional: on a machine without a C compiler the install still succeeds and wit falls back
to the pure-Python or library path each replaces (same output, slower).
- ``wit.queries._wikiclean``: the wikitext cleaner and tokeniser (else wikipedia.py's reference).
- ``wit.candidates._imgscan``: the <img> tag scanner of WARC pages (else lexbor parses every page).
- ``wit.imagehash._hamming``: the keypoint index's nearest-neighbour search (else numpy in lsh.py).
"""

from setuptools import Extension, setup

setup(ext_modules=[
    Extension("wit.queries._wikiclean", ["wit/queries/_wikiclean.c"], optional=True),
    Extension("wit.candidates._imgscan", ["wit/candidates/_imgscan.c"], optional=True),
    Extension("wit.imagehash._hamming", ["wit/imagehash/_hamming.c"], optional=True),
])
