"""The query builder: WordNet, Wikipedia word/bigram counts and pageview titles -> queries.parquet.

``build.build_queries(config, out)`` is the entry point (used by ``wit queries build`` and the
pipeline step); docs/queries.md states the rules.
"""
