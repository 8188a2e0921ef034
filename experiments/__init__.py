"""Experiments that drive the services end to end on real data (`make experiment-pacs PACS=...`)."""
