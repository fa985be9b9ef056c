"""Signals: turn recorded or predicted behaviour into per-word and per-token features."""
