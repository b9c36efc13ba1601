"""Balancing matched pairs with a per-entry cap t (MetaCLIP Algorithm 1, and a strict hard cap)."""
