"""The live status of a generator job (`<set>/_status.json`), for the terminal and the control plane.

Rewritten every few seconds while the job runs and once at its end; a reader polls it. It is advisory:
only the manifest says a set is complete.
"""
from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

STATUS_FORMAT = "dad-generation-status"
JobState = Literal["starting", "running", "succeeded", "failed"]


class GenerationStatus(BaseModel):
    model_config = ConfigDict(extra="forbid")

    format: Literal["dad-generation-status"] = STATUS_FORMAT
    state: JobState = "starting"
    set_name: str
    set_uri: str
    manifest_uri: str | None = None     # set when state == "succeeded"
    message: str = ""                   # the error, when state == "failed"
    total_items: int = 0                # source items in the set
    done_items: int = 0                 # items finished (this run and earlier runs)
    resumed_items: int = 0              # items in shards committed by earlier runs
    total_shards: int = 0
    committed_shards: int = 0
    seen: int = 0                       # this run
    accepted: int = 0
    rejected: int = 0
    errored: int = 0
    errors: dict[str, int] = Field(default_factory=dict)   # errored items by reason (this run)
    samples_per_s: float = 0.0          # source items per second, this run
    acceptance_rate: float = 0.0        # accepted adversarial / decoded items
    eta_s: float | None = None
    elapsed_s: float = 0.0
    started_at: datetime
    updated_at: datetime
