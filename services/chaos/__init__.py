"""Chaos rehearsal: a seeded fault injector around real generator and trainer runs on a local S3-protocol
server (`python -m services.chaos`, `make chaos`); see README "Reliability"."""
