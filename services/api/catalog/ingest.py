"""Index what the store holds into the catalog: sample sets (from manifests), runs (from run folders),
evaluation results (from the evaluator's outputs). `rebuild` does all of it from an empty catalog.
"""
from __future__ import annotations

import hashlib
import logging
import shlex
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import pyarrow.parquet as pq
from sqlalchemy.orm import Session

from schemas import sample_store as ss
from schemas.api import RunRecord
from schemas.manifest import SampleSetManifest
from services.api.catalog import crud
from services.api.catalog.models import Run, SampleSet
from services.api.catalog.results import read_results
from services.api.images import UnsafePath, inside
from services.api.store import Store

log = logging.getLogger(__name__)

_INDEX_COLUMNS = [ss.COL_SAMPLE_ID, ss.COL_SOURCE_ID, ss.COL_LABEL, ss.COL_KIND, ss.COL_TEACHER_LOGITS,
                  ss.COL_TEACHER_PREDICTION, ss.COL_TEACHER_CONFIDENCE, ss.COL_ACCEPTED]


def top_k(logits: np.ndarray, k: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """(indices, softmax probabilities) of the k largest logits per row; logits (N, K) -> (N, k), (N, k).

    Ties go to the lower class index (a stable sort's order), in O(K) per row: the k largest are picked by a
    partition, only they are sorted, and a row with a tie across the k-th place takes the full sort.
    """
    logits = logits.astype(np.float32)
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    n, width = probs.shape
    k = min(k, width)
    if k == 0 or n == 0:
        return np.zeros((n, k), np.int64), np.zeros((n, k), np.float32)
    kth = -np.partition(-probs, k - 1, axis=1)[:, k - 1:k]            # (N, 1) the k-th largest value
    chosen = probs >= kth
    exact = chosen.sum(axis=1) == k                                      # no tie across the k-th place
    idx = np.empty((n, k), np.int64)
    cand = np.nonzero(chosen[exact])[1].reshape(-1, k)                   # ascending class index per row
    order = np.argsort(-np.take_along_axis(probs[exact], cand, axis=1), axis=1, kind="stable")
    idx[exact] = np.take_along_axis(cand, order, axis=1)
    if not exact.all():
        idx[~exact] = np.argsort(-probs[~exact], axis=1, kind="stable")[:, :k]
    return idx, np.take_along_axis(probs, idx, axis=1)


def _shard_rows(table, set_id: str, shard: int, position0: int) -> list[dict]:
    logits_col = table.column(ss.COL_TEACHER_LOGITS).combine_chunks()
    n = table.num_rows
    if n:
        width = len(logits_col[0])
        logits = logits_col.flatten().to_numpy(zero_copy_only=False).reshape(n, width)  # (N, K)
        idx, probs = top_k(logits)
    cols = {name: table.column(name).to_pylist() for name in _INDEX_COLUMNS if name != ss.COL_TEACHER_LOGITS}
    diag = (table.column(ss.COL_PERTURBATION).to_pylist() if ss.COL_PERTURBATION in table.column_names
            else [None] * n)  # sets before format v4 have none
    return [{
        "set_id": set_id, "sample_id": cols[ss.COL_SAMPLE_ID][i], "source_id": cols[ss.COL_SOURCE_ID][i],
        "position": position0 + i, "shard": shard, "row": i, "kind": cols[ss.COL_KIND][i],
        "label": cols[ss.COL_LABEL][i], "prediction": cols[ss.COL_TEACHER_PREDICTION][i],
        "confidence": float(cols[ss.COL_TEACHER_CONFIDENCE][i]), "accepted": ss.accepted_by_kind(cols[ss.COL_KIND][i], cols[ss.COL_ACCEPTED][i]),
        "top5": [[int(c), round(float(p), 5)] for c, p in zip(idx[i], probs[i], strict=True)],
        "perturbation": None if diag[i] is None else {k: None if v is None or v != v else v for k, v in diag[i].items()},
    } for i in range(n)]


def index_sample_set(session: Session, store: Store, set_id: str, run_id: str | None = None) -> SampleSet:
    """(Re)index one published set: its manifest becomes a SampleSet row, its shards' rows Sample rows.

    Only the shard files the manifest lists are read, each checked to lie inside the set's folder.
    """
    data = store.manifest_bytes(set_id)
    if data is None:
        raise FileNotFoundError(f"sample set {set_id!r} has no manifest in {store.uri}")
    manifest = SampleSetManifest.from_json(data, store.manifest_uri(set_id))
    root = store.set_path(set_id)
    shard_paths = [s.path for s in manifest.shards]
    paths = [inside(root, rel) for rel in shard_paths]  # UnsafePath for '..', absolute, schemes, encoded variants
    cfg = manifest.config
    stats = manifest.statistics
    statistics = {**stats.model_dump(mode="json", exclude={"perturbation"}), "acceptance_rate": stats.acceptance_rate,
                  "num_rows": manifest.num_rows, "num_shards": len(manifest.shards),
                  "timings": manifest.timings.model_dump(mode="json"),
                  # the diagnostics' means and quantiles, from the manifest's tally (requests never scan the set)
                  "diagnostics": None if stats.perturbation is None
                  else stats.perturbation.summary().model_dump(mode="json")}
    lineage = {
        "run_id": run_id, "name": manifest.name, "preset": cfg.preset, "fingerprint": cfg.fingerprint,
        "source": manifest.source.model_dump(mode="json"), "teacher": cfg.teacher.model_dump(mode="json"),
        "discretizer": cfg.discretizer.model_dump(mode="json"), "attack": cfg.attack, "seed": cfg.seed,
        "image_size": cfg.image_size, "class_ids": cfg.class_ids,
        "code_version": manifest.code_version.model_dump(mode="json"),
    }
    sample_set = SampleSet(
        id=set_id, uri=store.set_uri(set_id), manifest_sha256=hashlib.sha256(data).hexdigest(),
        created_at=manifest.created_at, preset=cfg.preset, lineage=lineage, statistics=statistics,
        class_names=list(cfg.class_names), shards=shard_paths, num_rows=manifest.num_rows,
        has_discretized=False, indexed_at=crud.utcnow())

    starts = np.concatenate([[0], np.cumsum([sh.num_rows for sh in manifest.shards])]).tolist()

    def load(shard_index: int) -> list[dict]:
        with store.fs.open(paths[shard_index], "rb") as f:
            pf = pq.ParquetFile(f)
            table = pf.read(columns=_INDEX_COLUMNS + [c for c in (ss.COL_PERTURBATION,) if c in pf.schema_arrow.names])
        if table.num_rows != manifest.shards[shard_index].num_rows:
            raise ValueError(f"shard {shard_paths[shard_index]} of sample set {set_id!r} has {table.num_rows} rows, "
                             f"its manifest says {manifest.shards[shard_index].num_rows}")
        return _shard_rows(table, set_id, shard_index, starts[shard_index])

    def shard_rows():
        """Shard by shard (at most two in memory: a paper-scale set has millions of rows); the next shard is
        read and decoded in a thread while this one is inserted (Parquet and numpy release the GIL)."""
        with ThreadPoolExecutor(max_workers=1) as pool:
            ahead = pool.submit(load, 0) if paths else None
            for shard_index in range(len(paths)):
                rows = ahead.result()
                ahead = pool.submit(load, shard_index + 1) if shard_index + 1 < len(paths) else None
                sample_set.has_discretized |= any(r["kind"] == "discretized" for r in rows)
                yield rows

    crud.replace_sample_set(session, sample_set, shard_rows())
    return sample_set


def index_run(session: Session, store: Store, run_id: str) -> Run | None:
    """A Run row from `<store>/runs/<id>/run.json` (+ status.json); None if the folder has no record."""
    record = store.read_run_record(run_id)
    if record is None:
        return None
    status = store.read_run_status(run_id)
    run = run_from_record(record)
    if status is not None:
        run.status, run.message = status.status, status.message
        run.started_at, run.finished_at, run.updated_at = status.started_at, status.finished_at, status.updated_at
    else:
        run.status = "UNKNOWN"  # the control plane never saw it end; the sync asks Ray if Ray still knows it
    crud.upsert_run(session, run)
    return run


def run_from_record(record: RunRecord) -> Run:
    """A catalog row for a submitted run (status PENDING until Ray says otherwise)."""
    return Run(id=record.id, kind=record.kind, status="PENDING", config=record.config,
               config_sha256=record.config_sha256, entrypoint=shlex.join(record.entrypoint),
               output_uri=record.output_uri, sample_set_id=record.sample_set_id, message="",
               submitted_at=record.submitted_at, started_at=None, finished_at=None, updated_at=record.submitted_at)


def index_results(session: Session, store: Store, run: Run) -> int:
    """Index an eval run's results; returns how many numbers were found."""
    results = read_results(store, run)
    crud.replace_results(session, run.id, results)
    return len(results)


@dataclass
class RebuildReport:
    runs: int = 0
    sample_sets: int = 0
    samples: int = 0
    results: int = 0
    skipped: list[str] = field(default_factory=list)   # what could not be indexed, with why


def rebuild(session: Session, store: Store) -> RebuildReport:
    """Empty the catalog and index everything the store holds. The store is never written."""
    report = RebuildReport()
    crud.clear(session)
    runs: dict[str, Run] = {}
    for run_id in store.list_run_ids():
        try:
            run = index_run(session, store, run_id)
        except (ValueError, OSError) as e:
            session.rollback()
            report.skipped.append(f"run {run_id}: {e}")
            continue
        if run is not None:
            runs[run_id] = run
            report.runs += 1
    set_runs = {r.sample_set_id: r.id for r in runs.values() if r.sample_set_id}
    for set_id in store.list_set_ids():
        try:
            s = index_sample_set(session, store, set_id, run_id=set_runs.get(set_id))
        except (ValueError, OSError, UnsafePath) as e:
            session.rollback()
            report.skipped.append(f"sample set {set_id}: {e}")
            continue
        report.sample_sets += 1
        report.samples += s.num_rows
    for run in runs.values():
        if run.kind == "eval":
            try:
                report.results += index_results(session, store, run)
            except (ValueError, OSError) as e:
                session.rollback()
                report.skipped.append(f"results of {run.id}: {e}")
    return report
