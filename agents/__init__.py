"""LAW agents."""
