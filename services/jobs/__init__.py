"""Plumbing every job shares: its config model's command line (cli), typed preset overrides (presets),
joining Ray (ray_cluster), and the dad_core-backed checks that schemas.jobs configs validate with."""
from schemas.jobs import install_checks
from services.jobs.checks import DadCoreChecks

install_checks(DadCoreChecks())
