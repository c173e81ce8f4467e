"""Span processors: carbon enrichment, the content guard, and trace roll-ups."""
