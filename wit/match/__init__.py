"""Substring matching of candidate texts against the query list (MetaCLIP semantics)."""
