"""CLIP §5 data-overlap analysis: a pHash duplicate detector over training shards, the
Overlap / Clean / All statistics, and the report (JSON, Markdown, HTML, plots)."""
