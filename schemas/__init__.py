"""Data contracts shared by every service: the sample store format, its manifest, job status, each job's
config (schemas.jobs), evaluation results and training metrics (schemas.results), the API (schemas.api).

Depends on nothing in this repository (schemas <- dad_core <- services).
"""
from schemas.generation_status import GenerationStatus
from schemas.manifest import (
    CodeVersion, ModelInfo, ReasonCounts, SampleSetConfig, SampleSetManifest, SampleSetPlan, ShardCommit,
    ShardInfo, SourceFingerprint, Statistics, Timings,
)
from schemas.sample_store import FORMAT_NAME, FORMAT_VERSION, KIND_ADVERSARIAL, KIND_CLEAN, SAMPLE_SCHEMA, sample_id

__all__ = [
    "GenerationStatus", "CodeVersion", "ModelInfo", "ReasonCounts", "SampleSetConfig", "SampleSetManifest",
    "SampleSetPlan", "ShardCommit", "ShardInfo", "SourceFingerprint", "Statistics", "Timings",
    "FORMAT_NAME", "FORMAT_VERSION", "KIND_ADVERSARIAL", "KIND_CLEAN", "SAMPLE_SCHEMA", "sample_id",
]
