"""Build of the one C extension; the rest of the package metadata is in pyproject.toml.

``wit.queries._wikiclean`` is the compiled wikitext cleaner. It is optional: on a machine without
a C compiler the install still succeeds and wit/queries/wikipedia.py uses its pure-Python
reference (same output, slower).
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("wit.queries._wikiclean", ["wit/queries/_wikiclean.c"], optional=True)])
