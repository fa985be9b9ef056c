"""tacitly."""
