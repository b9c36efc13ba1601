"""Candidate (image URL, alt text) pairs from Common Crawl WAT/WARC files and URL+text lists."""
