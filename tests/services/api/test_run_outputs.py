"""Downloads of a run's files, its metrics without the log, the results CSV, and a readable missing-log message."""
from __future__ import annotations

import csv
import io
import json

TRAIN = {"id": "train-1", "kind": "train", "config": {"source": "/d", "sample_set": "synthetic", "preset": "tiny",
                                                       "epochs": 1}}


def _train_run(client, auth, store):
    assert client.post("/runs", json=TRAIN, headers=auth).status_code == 201
    folder = store / "runs" / "train-1"
    (folder / "model.pth").write_bytes(b"\x00weights" * 300_000)  # > one streamed chunk
    lines = [{"type": "step", "epoch": 0, "step": s, "loss": 1 / s, "accepted_fraction": 0.5} for s in range(1, 101)]
    lines.append({"type": "epoch", "epoch": 0, "step": 100, "val_top1": 42.0})
    (folder / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    return folder


def test_run_files_download_as_attachments_and_only_known_names(client, auth, store):
    folder = _train_run(client, auth, store)
    r = client.get("/runs/train-1/files/model.pth")
    assert r.status_code == 200 and r.content == (folder / "model.pth").read_bytes()
    assert r.headers["content-disposition"] == 'attachment; filename="train-1-model.pth"'
    assert int(r.headers["content-length"]) == len(r.content)
    m = client.get("/runs/train-1/files/metrics.jsonl")
    assert m.status_code == 200 and m.text == (folder / "metrics.jsonl").read_text()
    assert client.get("/runs/train-1/files/run.json").json()["id"] == "train-1"
    missing = client.get("/runs/train-1/files/model.json")
    assert missing.status_code == 404 and "model.json" in missing.json()["detail"]
    for bad in ("status.json", "..%2F..%2Fcatalog.db", "model.pth.bak", "%2Fetc%2Fpasswd"):
        assert client.get(f"/runs/train-1/files/{bad}").status_code in (404, 422), bad
    assert client.get("/runs/nope/files/model.pth").status_code == 404


def test_run_metrics_are_thinned_within_bounds(client, auth, store):
    _train_run(client, auth, store)
    records = client.get("/runs/train-1/metrics", params={"max_points": 10}).json()["records"]
    steps = [r for r in records if r["type"] == "step"]
    assert 10 <= len(steps) <= 11 and steps[-1]["step"] == 100
    assert [r for r in records if r["type"] == "epoch"] == [{"type": "epoch", "epoch": 0, "step": 100, "val_top1": 42.0}]
    assert len(client.get("/runs/train-1/metrics").json()["records"]) == 101
    for bad in (9, 20001, "x", 1.5):
        assert client.get("/runs/train-1/metrics", params={"max_points": bad}).status_code == 422, bad
    assert client.get("/runs/nope/metrics").status_code == 404


def test_results_csv_has_the_interval_and_image_count(client, auth, store, launcher):
    body = {"id": "eval-1", "kind": "eval", "config": {"model": "/m.pth", "suites": ["imagenet-r"]}}
    assert client.post("/runs", json=body, headers=auth).status_code == 201
    launcher.jobs["eval-1"]["status"] = "SUCCEEDED"
    (store / "runs" / "eval-1" / "results").mkdir(parents=True)
    (store / "runs" / "eval-1" / "results" / "e.json").write_text(json.dumps({
        "format": "dad-evaluation", "version": 1, "id": "e", "name": "m", "created_at": "2026-11-25T10:00:00+00:00",
        "suites": {"imagenet-r": {}}, "metrics": [{"suite": "imagenet-r", "metric": "top1", "value": 45.25,
                                                    "lower_is_better": False, "ci95": [44.0, 46.5], "num_images": 300}]}))
    client.app.state.sync.run_once()
    r = client.get("/results/csv")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert r.headers["content-disposition"] == 'attachment; filename="results.csv"'
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert len(rows) == 1
    row = rows[0]
    assert (row["run_id"], row["suite"], row["value"], row["ci95_low"], row["ci95_high"], row["num_images"]) == \
        ("eval-1", "imagenet-r", "45.25", "44.0", "46.5", "300")


def test_a_job_ray_no_longer_knows_gets_a_readable_log_message(client, auth, launcher, monkeypatch):
    assert client.post("/runs", json=TRAIN, headers=auth).status_code == 201

    def gone(run_id):
        raise RuntimeError("Request failed with status code 404: Job train-1 does not exist.")

    monkeypatch.setattr(launcher, "logs", gone)
    detail = client.get("/runs/train-1").json()
    assert detail["log_tail"] is None
    assert detail["log_error"].startswith("Ray has no log for this job") and "404" not in detail["log_error"]


def test_a_tracked_train_run_links_its_mlflow_run_and_an_untracked_one_does_not(client, auth, store):
    folder = _train_run(client, auth, store)
    assert client.get("/runs/train-1").json()["mlflow"] is None
    record = {"tracking_uri": "http://127.0.0.1:5000", "experiment_id": "3", "run_id": "abc123"}
    (folder / "mlflow.json").write_text(json.dumps(record))
    link = client.get("/runs/train-1").json()["mlflow"]
    assert link == {**record, "url": "http://127.0.0.1:5000/#/experiments/3/runs/abc123"}
