"""The API as `make fuzz-api` and test_fuzz.py fuzz it: the real app under uvicorn on 127.0.0.1, with an
in-memory job launcher standing in for Ray (submissions are accepted and recorded, never run).

    python tests/services/api/fuzz/server.py --store DIR --port N     (DAD_AUTH_TOKEN in the environment)
"""
from __future__ import annotations

import argparse
import logging

from services.api.launcher import JobConflict, JobState


class MemoryLauncher:
    """Ray's job server, reduced to a dict: enough for the API's every code path except real jobs."""

    def __init__(self):
        self.jobs: dict[str, dict] = {}

    def submit(self, run_id, entrypoint, metadata, runtime_env):
        job = self.jobs.setdefault(run_id, {"metadata": metadata, "status": "PENDING"})
        if job["metadata"] != metadata:
            raise JobConflict(f"different config for {run_id!r}")

    def state(self, run_id):
        job = self.jobs.get(run_id)
        return None if job is None else JobState(job["status"], metadata=job["metadata"])

    def logs(self, run_id):
        return "fuzz server: no job runs here\n"

    def stop(self, run_id):
        if run_id in self.jobs:
            self.jobs[run_id]["status"] = "STOPPED"
        return True


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--store", required=True)
    p.add_argument("--port", type=int, required=True)
    args = p.parse_args()
    logging.basicConfig(level="WARNING")
    import uvicorn

    from services.api.app import create_app
    from services.api.settings import Settings

    settings = Settings(store_uri=args.store, sync_interval_s=1.0)
    uvicorn.run(create_app(settings, launcher=MemoryLauncher()), host="127.0.0.1", port=args.port,
                log_level="warning")


if __name__ == "__main__":
    main()
