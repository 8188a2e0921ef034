"""The sample store: one writer (commit shards, publish a manifest last) and one reader (trusts manifests).

The format itself is defined in `schemas.sample_store` and `schemas.manifest`. The reader (torch, Ray) is
imported on first use, so write tasks on Ray workers stay light.
"""
from services.sample_store.rows import (
    SampleBatch, StoredViews, TeacherVerdicts, build_rows, decode_png, encode_png,
)
from services.sample_store.writer import SampleSetStore

_READER = ("SampleSetDataset", "load_manifest", "open_sample_set", "shard_uris", "to_ray_dataset", "verify_sample_set")

__all__ = [*_READER, "SampleBatch", "StoredViews", "TeacherVerdicts", "build_rows", "decode_png", "encode_png", "SampleSetStore"]


def __getattr__(name):
    if name in _READER:
        from services.sample_store import reader

        return getattr(reader, name)
    raise AttributeError(name)
