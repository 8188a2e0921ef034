"""The one writer of the sample store: commit shards atomically, keep resume state, publish the manifest last.

Exactly-once comes from three rules:
1. A shard's Parquet file gets a name unique to the write attempt, so two attempts never clobber each other.
2. The shard's commit marker (`_commits/shard-NNNNNN.json`) is written atomically *after* its file and names
   that file and its sha256; a shard without a marker is simply redone by the next run.
3. The manifest is built from commit markers only and written last; files no marker names are orphans of
   killed attempts and are deleted after publishing.
"""
from __future__ import annotations

import hashlib
import logging
import time
import uuid
from datetime import datetime, timezone
from typing import Mapping

import pyarrow as pa
import pyarrow.parquet as pq

from schemas import sample_store as ss
from schemas.generation_status import GenerationStatus
from schemas.manifest import (
    SampleSetManifest, SampleSetPlan, ShardCommit, ShardInfo, Statistics, parse_versioned,
)
from services.storage import StoreFolder, to_uri

log = logging.getLogger(__name__)

ROW_GROUP_SIZE = 128  # rows; small groups keep random access by the torch reader cheap


def parquet_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd", row_group_size=ROW_GROUP_SIZE)
    return sink.getvalue().to_pybytes()


class SampleSetStore(StoreFolder):
    """The folder of one sample set on any fsspec URL."""

    @property
    def manifest_uri(self) -> str:
        return self.uri_of(ss.MANIFEST_NAME)

    # -- resume state ------------------------------------------------------------------------------------
    def read_plan(self) -> SampleSetPlan | None:
        data = self.read(ss.PLAN_NAME)
        if data is None:
            return None
        return parse_versioned(SampleSetPlan, data, f"{self.uri}/{ss.PLAN_NAME}", "dad-sample-plan")

    def write_plan(self, plan: SampleSetPlan) -> None:
        self.write(ss.PLAN_NAME, plan.model_dump_json(indent=2).encode())

    def committed_shards(self) -> dict[int, ShardCommit]:
        """Commit markers by shard index; an unreadable marker counts as not committed (the shard is redone)."""
        names = [p for p in self.list(ss.COMMITS_DIR) if p.endswith(".json")]
        out = {}
        for path in names:
            try:
                commit = parse_versioned(ShardCommit, self.fs.cat_file(path), to_uri(self.fs, path), "dad-shard-commit")
            except (ValueError, OSError) as e:
                log.warning("ignoring unreadable commit marker %s: %s", path, e)
                continue
            out[commit.shard.index] = commit
        return out

    def commit_shard(self, index: int, first_item: int, num_items: int, table: pa.Table, statistics: Statistics,
                     stage_s: Mapping[str, float], set_fingerprint: str, teacher_checksum: str,
                     discretizer_checksum: str, run_id: str) -> ShardCommit:
        """Write the shard's file under a fresh name, then its commit marker; returns the marker."""
        t0 = time.perf_counter()
        data = parquet_bytes(table)
        name = ss.shard_file_name(index, uuid.uuid4().hex[:12])
        rel = f"{ss.SHARDS_DIR}/{name}"
        self.write(rel, data)
        stage_s = {**stage_s, "write": time.perf_counter() - t0}
        commit = ShardCommit(
            set_fingerprint=set_fingerprint, run_id=run_id, teacher_checksum=teacher_checksum,
            discretizer_checksum=discretizer_checksum, statistics=statistics, stage_s=stage_s,
            shard=ShardInfo(index=index, path=rel, num_rows=table.num_rows, num_bytes=len(data),
                            sha256=hashlib.sha256(data).hexdigest(), first_item=first_item, num_items=num_items),
            committed_at=datetime.now(timezone.utc))
        self.write(f"{ss.COMMITS_DIR}/{ss.commit_marker_name(index)}", commit.model_dump_json(indent=2).encode())
        return commit

    # -- publishing --------------------------------------------------------------------------------------
    def read_manifest(self) -> SampleSetManifest | None:
        data = self.read(ss.MANIFEST_NAME)
        return None if data is None else SampleSetManifest.from_json(data, self.manifest_uri)

    def publish(self, manifest: SampleSetManifest) -> str:
        """Write the manifest (the set becomes visible to readers) and return its URI."""
        self.write(ss.MANIFEST_NAME, manifest.to_json().encode())
        return self.manifest_uri

    def remove_unreferenced(self, manifest: SampleSetManifest) -> int:
        """Delete shard files (and temp files) the manifest does not name: leftovers of killed attempts."""
        keep = {self.path_of(s.path) for s in manifest.shards}
        present = self.list(ss.SHARDS_DIR)
        removed = 0
        for path in present:
            if path.rstrip("/") not in keep:
                self.fs.rm_file(path)
                removed += 1
        return removed

    def write_status(self, status: GenerationStatus) -> None:
        self.write(ss.STATUS_NAME, status.model_dump_json(indent=2).encode())

    def read_status(self) -> GenerationStatus | None:
        data = self.read(ss.STATUS_NAME)
        return None if data is None else GenerationStatus.model_validate_json(data)
