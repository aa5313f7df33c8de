"""Adapters: one per party kind, mapping a back office's data to LVV messages."""
