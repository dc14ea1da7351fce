"""Run summaries and charts."""
