"""The one writer of the sample store: commit shards atomically, keep resume state, publish the manifest last.

Exactly-once comes from three rules:
1. A shard's Parquet file gets a name unique to the write attempt, so two attempts never clobber each other.
2. The shard's commit marker (`_commits/shard-NNNNNN.json`) is written atomically *after* its file and names
   that file and its sha256; a shard without a marker is simply redone by the next run.
3. The manifest is built from commit markers only and written last; after publishing, files of the writer's
   own naming that the manifest does not name (orphans of killed attempts, temp files, markers of no listed
   shard) are deleted. Any other file is left where it is and reported: the writer never deletes what it
   did not make.
"""
from __future__ import annotations

import hashlib
import logging
import posixpath
import re
import time
import uuid
from dataclasses import dataclass, field
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


# Names the writer makes (schemas.sample_store.shard_file_name / commit_marker_name, and the temp siblings of
# services.storage.atomic_write_bytes): only these may be deleted by cleanup.
_TEMP = r"\.tmp-[0-9a-f]{32}"
_OWN_SHARD = re.compile(r"shard-\d{6,}-[0-9a-f]+\.parquet")
_OWN_SHARD_TEMP = re.compile(rf"shard-\d{{6,}}-[0-9a-f]+\.parquet{_TEMP}")
_OWN_MARKER = re.compile(r"shard-(\d{6,})\.json")
_OWN_MARKER_TEMP = re.compile(rf"shard-\d{{6,}}\.json{_TEMP}")


@dataclass
class Cleanup:
    """What `remove_unreferenced` did: files of ours it deleted, and files it left because it did not make them."""

    removed: list[str] = field(default_factory=list)
    foreign: list[str] = field(default_factory=list)


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

    def remove_unreferenced(self, manifest: SampleSetManifest) -> Cleanup:
        """Delete the writer's own leftovers the manifest does not name: shard files of killed attempts, temp
        files in shards/ and _commits/, commit markers of no listed shard. Anything else is left and reported."""
        keep_shards = {posixpath.basename(s.path) for s in manifest.shards}
        listed = {s.index for s in manifest.shards}
        cleanup = Cleanup()

        def ours_to_remove(folder: str, name: str) -> bool:
            if folder == ss.SHARDS_DIR:
                return name not in keep_shards and bool(_OWN_SHARD.fullmatch(name) or _OWN_SHARD_TEMP.fullmatch(name))
            marker = _OWN_MARKER.fullmatch(name)
            return bool(_OWN_MARKER_TEMP.fullmatch(name)) or (marker is not None and int(marker[1]) not in listed)

        for folder in (ss.SHARDS_DIR, ss.COMMITS_DIR):
            path = self.path_of(folder)
            self.fs.invalidate_cache(path)
            try:
                entries = self.fs.ls(path, detail=True)
            except FileNotFoundError:
                continue
            for entry in entries:
                full = entry["name"].rstrip("/")
                name = posixpath.basename(full)
                if entry.get("type") == "file" and ours_to_remove(folder, name):
                    self.fs.rm_file(full)
                    cleanup.removed.append(f"{folder}/{name}")
                elif entry.get("type") != "file" or not (name in keep_shards or _OWN_MARKER.fullmatch(name)):
                    cleanup.foreign.append(f"{folder}/{name}")
        return cleanup

    def write_status(self, status: GenerationStatus) -> None:
        self.write(ss.STATUS_NAME, status.model_dump_json(indent=2).encode())

    def read_status(self) -> GenerationStatus | None:
        data = self.read(ss.STATUS_NAME)
        return None if data is None else GenerationStatus.model_validate_json(data)
