"""One way for every job to join Ray: the given address or $RAY_ADDRESS, else a local Ray for this process."""
from __future__ import annotations

import logging
import os


def connect_ray(address: str | None = None, num_cpus: int | None = None, **options) -> None:
    """Join `address` (or $RAY_ADDRESS, as `ray job submit` sets it), else start a local Ray that lives as long
    as this process. `options` go to `ray.init` (e.g. log_to_driver=False)."""
    import ray

    address = address or os.environ.get("RAY_ADDRESS")
    if address and address != "local":
        ray.init(address=address, logging_level=logging.WARNING, **options)
    else:
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, logging_level=logging.WARNING,
                 **options)
