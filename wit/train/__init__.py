"""Contrastive (CLIP) training straight from the webdataset shards, and zero-shot evaluation."""
