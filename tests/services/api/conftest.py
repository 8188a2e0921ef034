"""Fixtures of the control-plane tests: a store with a synthetic sample set, a fake launcher, a TestClient.

The synthetic set is written with the sample store's own row builder and manifest schema (no Ray, no
models), so route tests take milliseconds; the end-to-end test (test_e2e.py) uses a set the real
generator made through a real Ray job.
"""
from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pytest

AUTH_TOKEN = "test-token-0123456789abcdef"
CLASSES = ("cat", "dog", "bird")


def write_sample_set(store: Path, set_id: str, per_class: int = 4, shard_size: int = 5, seed: int = 0,
                     shard_path_override: str | None = None) -> dict[str, Any]:
    """A published set under `<store>/sample-sets/<set_id>`: clean + adversarial rows, a manifest.

    `shard_path_override` replaces the first shard's path in the manifest (for path-trick tests).
    Returns {"manifest": SampleSetManifest, "rows": list of row dicts without images}.
    """
    from schemas.manifest import (CodeVersion, ModelInfo, SampleSetConfig, SampleSetManifest, ShardInfo,
                                  SourceFingerprint, Statistics, Timings)
    from services.sample_store import SampleBatch, TeacherVerdicts, build_rows
    from services.sample_store.writer import parquet_bytes

    rng = np.random.default_rng(seed)
    n = per_class * len(CLASSES)
    labels = np.repeat(np.arange(len(CLASSES)), per_class)
    source_ids = [f"{CLASSES[y]}/{i:03d}.png" for i, y in enumerate(labels)]

    def verdicts(accept_every: int) -> TeacherVerdicts:
        logits = rng.normal(size=(n, len(CLASSES))).astype(np.float16)
        logits[np.arange(n), labels] += 3  # the teacher is mostly right...
        wrong = np.arange(n) % accept_every == accept_every - 1  # ...except on every k-th item
        logits[wrong, labels[wrong]] -= 6
        p = np.exp(logits.astype(np.float32))
        p /= p.sum(1, keepdims=True)
        pred = p.argmax(1)
        return TeacherVerdicts(logits, pred.astype(np.int64), p.max(1).astype(np.float32), pred == labels)

    clean = rng.integers(0, 256, (n, 16, 16, 3), dtype=np.uint8)
    adv = np.clip(clean.astype(int) + rng.integers(-40, 40, clean.shape), 0, 255).astype(np.uint8)
    clean_v, adv_v = verdicts(10**6), verdicts(3)
    clean_v.accepted[:] = True
    # perturbation diagnostics (format v4): measured where the synthetic images allow, made up elsewhere
    from schemas.perturbation import DIAGNOSTIC_NAMES, PerturbationTally

    diff = (adv.astype(np.float32) - clean) / 255
    diag = {name: rng.random(n).astype(np.float32) for name in DIAGNOSTIC_NAMES}
    diag["l2_vs_qx"] = np.sqrt((diff ** 2).reshape(n, -1).sum(1)).astype(np.float32)
    diag["same_vs_qx"] = (adv == clean).reshape(n, -1).mean(1).astype(np.float32)
    diag["codes_vs_qqx"][0] = np.nan  # not measured on this item
    tally = PerturbationTally()
    tally.add(diag, labels.tolist())
    fingerprint = hashlib.sha256(f"synthetic/{set_id}/{seed}".encode()).hexdigest()
    root = store / "sample-sets" / set_id
    (root / "shards").mkdir(parents=True, exist_ok=True)
    shards = []
    for k, start in enumerate(range(0, n, shard_size)):
        sl = slice(start, min(n, start + shard_size))
        batch = SampleBatch(source_ids[sl], [f"/src/{s}" for s in source_ids[sl]], labels[sl], clean[sl], adv[sl],
                            TeacherVerdicts(*(getattr(clean_v, f)[sl] for f in ("logits", "prediction", "confidence", "accepted"))),
                            TeacherVerdicts(*(getattr(adv_v, f)[sl] for f in ("logits", "prediction", "confidence", "accepted"))),
                            perturbation={k: v[sl] for k, v in diag.items()})
        data = parquet_bytes(build_rows(fingerprint, [batch]))
        rel = f"shards/shard-{k:06d}-abc{k:03d}.parquet"
        (root / rel).write_bytes(data)
        shards.append(ShardInfo(index=k, path=rel, num_rows=2 * (sl.stop - sl.start), num_bytes=len(data),
                                sha256=hashlib.sha256(data).hexdigest(), first_item=start, num_items=sl.stop - sl.start))
    if shard_path_override is not None:
        shards[0] = shards[0].model_copy(update={"path": shard_path_override})
    accepted = int(adv_v.accepted.sum())
    stats = Statistics(seen=n, clean=n, accepted=accepted, teacher_clean_correct=int((clean_v.prediction == labels).sum()),
                       perturbation=tally)
    stats.rejected.add("teacher_wrong", n - accepted)
    now = datetime.now(timezone.utc)
    model = ModelInfo(kind="open_clip", name="tiny-clip-vit", weights=None, checksum="0" * 64)
    manifest = SampleSetManifest(
        name=set_id, created_at=now,
        config=SampleSetConfig(preset="tiny", preset_config={}, fingerprint=fingerprint, teacher=model,
                               discretizer=model.model_copy(update={"kind": "vqgan", "name": "tiny-vq"}),
                               attack={"steps": 1, "step_size": 0.1}, seed=seed, image_size=16, shard_size=shard_size,
                               batch_size=shard_size, class_ids=list(CLASSES), class_names=list(CLASSES)),
        source=SourceFingerprint(uri="/src", format="imagefolder", num_items=n, num_classes=len(CLASSES), sha256="0" * 64),
        shards=shards, statistics=stats, timings=Timings(started_at=now, finished_at=now), code_version=CodeVersion())
    (root / "manifest.json").write_text(manifest.to_json())
    return {"manifest": manifest, "num_items": n, "accepted": accepted, "perturbation": diag}


class FakeLauncher:
    """Stands in for Ray's job server: records submissions; `reachable = False` makes every call fail."""

    def __init__(self):
        self.jobs: dict[str, dict[str, Any]] = {}
        self.submit_calls = 0
        self.reachable = True

    def _check(self):
        from services.api.launcher import RayUnavailable

        if not self.reachable:
            raise RayUnavailable("the Ray job server at http://fake:8265 is unreachable (ConnectionError)")

    def submit(self, run_id, entrypoint, metadata, runtime_env):
        from services.api.launcher import JobConflict

        self._check()
        self.submit_calls += 1
        if run_id in self.jobs:
            if self.jobs[run_id]["metadata"] != metadata:
                raise JobConflict("different config")
            return
        self.jobs[run_id] = {"entrypoint": entrypoint, "metadata": metadata, "runtime_env": runtime_env,
                             "status": "PENDING"}

    def state(self, run_id):
        from services.api.launcher import JobState

        self._check()
        job = self.jobs.get(run_id)
        return None if job is None else JobState(job["status"], metadata=job["metadata"],
                                                 started_at=job.get("started_at"), finished_at=job.get("finished_at"))

    def logs(self, run_id):
        self._check()
        if self.jobs.get(run_id, {}).get("logs_gone"):  # as Ray answers for a job of a restarted cluster
            raise RuntimeError(f"Request failed with status code 404: Job {run_id} does not exist.")
        return "\n".join(f"line {i}" for i in range(500))

    def stop(self, run_id):
        self._check()
        self.jobs[run_id]["status"] = "STOPPED"
        return True


@pytest.fixture(scope="session")
def sample_set_writer():
    """`write_sample_set` as a fixture (test modules cannot import conftest)."""
    return write_sample_set


@pytest.fixture
def store(tmp_path) -> Path:
    root = tmp_path / "store"
    write_sample_set(root, "synthetic")
    return root


@pytest.fixture
def launcher() -> FakeLauncher:
    return FakeLauncher()


@pytest.fixture
def make_client(tmp_path, launcher):
    """make_client(store, **settings) -> a TestClient (context-managed: startup ran) on a fresh catalog."""
    from fastapi.testclient import TestClient

    from services.api.app import create_app
    from services.api.settings import Settings

    clients = []

    def make(store_root: Path | str, launcher_=launcher, **overrides) -> TestClient:
        settings = Settings(**{"store_uri": str(store_root), "auth_token": AUTH_TOKEN, "sync_interval_s": 0,
                               "database_url": f"sqlite:///{tmp_path}/catalog-{len(clients)}.db",
                               "ray_address": "http://127.0.0.1:9", **overrides})
        client = TestClient(create_app(settings, launcher=launcher_))
        client.__enter__()
        clients.append(client)
        client.app.state.sync.run_once()  # index what the store holds
        return client

    yield make
    for c in clients:
        c.__exit__(None, None, None)


@pytest.fixture
def client(make_client, store):
    return make_client(store)


@pytest.fixture
def auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {AUTH_TOKEN}"}


@pytest.fixture
def live_server(store, launcher, tmp_path):
    """A real uvicorn server (in a thread) on a free loopback port, with the fake launcher (no Ray)."""
    import socket
    import threading
    import time

    import uvicorn

    from services.api.app import create_app
    from services.api.settings import Settings

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = Settings(store_uri=str(store), database_url=f"sqlite:///{tmp_path}/live.db", auth_token="t" * 20,
                        ray_address="http://127.0.0.1:9", sync_interval_s=0)
    app = create_app(settings, launcher=launcher)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield {"url": f"http://127.0.0.1:{port}", "app": app, "headers": {"Authorization": "Bearer " + "t" * 20}}
    server.should_exit = True
    thread.join(timeout=10)
