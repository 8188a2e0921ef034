"""The deployment, end to end, on one machine: a two-node Ray (head with 0 CPUs + a worker joined with
`ray start --address`), PostgreSQL as the catalog, an S3-protocol server as the store, and the control plane
pointed at all three, configured through the environment as deploy/dad-api.yaml configures it. A tiny
generate -> train -> eval chain is submitted over REST as deploy/README.md shows; the catalog rows must land
in PostgreSQL, and the shards, the model and the results in the bucket.

Every job ran on the worker node: the head offers no CPUs, so nothing but the job drivers can run there.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]

CLASSES = ("circle", "square", "triangle")
PER_CLASS = 8
TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")


def _submit(api, body: dict) -> dict:
    r = httpx.post(f"{api['url']}/runs", json=body, headers=api["headers"], timeout=60)
    assert r.status_code == 201, r.text
    return r.json()


def _wait(fn, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(1.0)
    raise TimeoutError(f"{what} after {timeout_s:.0f} s")


def _finished(api, run_id: str, timeout_s: float = 240) -> dict:
    def poll():
        run = httpx.get(f"{api['url']}/runs/{run_id}", timeout=30).json()
        return run if run["status"] in TERMINAL else None

    run = _wait(poll, timeout_s, f"run {run_id} did not finish")
    assert run["status"] == "SUCCEEDED", f"{run_id}: {run['message']}\n{run.get('log_tail')}"
    return run


@pytest.fixture(scope="module")
def pipeline(api_process, ray_nodes, s3_process, s3fs_client, make_image_folder, tmp_path_factory):
    """Upload a tiny ImageFolder to the bucket, then generate -> train -> eval through the REST API."""
    api, bucket = api_process, s3_process["bucket"]
    source = make_image_folder(tmp_path_factory.mktemp("deploy-source"), classes=CLASSES, per_class=PER_CLASS,
                               size=(40, 40))
    s3fs_client.put(str(source), f"{bucket}/data/train", recursive=True)
    data = f"s3://{bucket}/data/train"

    try:
        return _run_pipeline(api, data)
    except (AssertionError, TimeoutError) as e:
        log = api["log"].read_text(errors="replace")
        tail = "\n".join(line for line in log.splitlines() if '" 200' not in line)[-4000:]  # not the polls
        raise AssertionError(f"{e}\n--- API server log (tail) ---\n{tail}") from e


def _run_pipeline(api, data: str) -> dict:
    gen = _submit(api, {"id": "deploy-gen", "kind": "generate",
                        "config": {"source": data, "preset": "tiny", "shard_size": 8, "batch_size": 8,
                                   "cpus_per_actor": 0.5}})
    gen_done = _finished(api, "deploy-gen")
    sample_set = _wait(lambda: (lambda r: r.json() if r.status_code == 200 else None)(
        httpx.get(f"{api['url']}/sample-sets/deploy-gen", timeout=30)), 60, "the sample set was not indexed")

    train = _submit(api, {"id": "deploy-train", "kind": "train",
                          "config": {"source": data, "sample_set": "deploy-gen", "preset": "tiny", "objective": "dad",
                                     "epochs": 1, "batch_size": 4, "lr": 0.01, "warmup_epochs": 0,
                                     "val_fraction": 0.2, "cpus_per_worker": 0.5, "loader_workers": 0,
                                     "max_steps_per_epoch": 3, "log_every": 1}})
    train_done = _finished(api, "deploy-train")

    ev = _submit(api, {"id": "deploy-eval", "kind": "eval",
                       "config": {"model_run": "deploy-train", "suites": [f"imagefolder:{data}"], "limit": 4,
                                  "batch_size": 8}})
    eval_done = _finished(api, "deploy-eval")
    results = _wait(lambda: (lambda r: r if r["count"] else None)(
        httpx.get(f"{api['url']}/results", params={"run_id": "deploy-eval"}, timeout=30).json()),
        60, "the evaluation results were not indexed")
    return {"submitted": (gen, train, ev), "runs": (gen_done, train_done, eval_done), "set": sample_set,
            "results": results}


def test_generate_train_eval_over_rest_on_a_two_node_ray(pipeline, ray_nodes):
    gen, train, ev = pipeline["runs"]
    for run, module in ((gen, "services.generator"), (train, "services.trainer"), (ev, "services.evaluator")):
        assert run["entrypoint"].split()[1:3] == ["-m", module]
        assert "AWS_SECRET_ACCESS_KEY" not in run["entrypoint"]
    jobs = {j.submission_id: j for j in ray_nodes["jobs"].list_jobs()}
    assert {jobs[i].status.value for i in ("deploy-gen", "deploy-train", "deploy-eval")} == {"SUCCEEDED"}
    assert pipeline["set"]["num_items"] == len(CLASSES) * PER_CLASS
    assert [r["suite"] for r in pipeline["results"]["data"]]


def test_the_catalog_rows_are_in_postgresql(pipeline, postgres_server):
    import psycopg

    pg = postgres_server
    with psycopg.connect(host=pg["host"], port=pg["port"], user=pg["user"], password=pg["password"],
                         dbname=pg["dbname"]) as conn:
        runs = dict(conn.execute("SELECT id, status FROM runs").fetchall())
        results = conn.execute("SELECT suite, metric, value FROM results WHERE run_id = 'deploy-eval'").fetchall()
        num_rows = conn.execute("SELECT num_rows FROM sample_sets WHERE id = 'deploy-gen'").fetchone()[0]
        samples = conn.execute("SELECT count(*) FROM samples WHERE set_id = 'deploy-gen'").fetchone()[0]
    assert runs == {"deploy-gen": "SUCCEEDED", "deploy-train": "SUCCEEDED", "deploy-eval": "SUCCEEDED"}
    assert results and {m for _, m, _ in results} >= {"top1"}
    assert all(0 <= v <= 100 for _, m, v in results if m == "top1")
    assert num_rows == samples == pipeline["set"]["num_rows"] > 0


def test_the_samples_model_and_results_are_in_the_bucket(pipeline, s3fs_client, s3_process):
    bucket = s3_process["bucket"]
    set_dir = f"{bucket}/store/sample-sets/deploy-gen"
    manifest = json.loads(s3fs_client.cat_file(f"{set_dir}/manifest.json"))
    shards = sorted(p.rsplit("/", 1)[-1] for p in s3fs_client.glob(f"{set_dir}/shards/*.parquet"))
    assert shards == sorted(s["path"].rsplit("/", 1)[-1] for s in manifest["shards"]) and len(shards) >= 3
    assert sum(s["num_rows"] for s in manifest["shards"]) == pipeline["set"]["num_rows"]
    assert s3fs_client.exists(f"{bucket}/store/runs/deploy-train/model.pth")
    assert s3fs_client.glob(f"{bucket}/store/runs/deploy-eval/results/*.json")
    for run_id in ("deploy-gen", "deploy-train", "deploy-eval"):
        status = json.loads(s3fs_client.cat_file(f"{bucket}/store/runs/{run_id}/status.json"))
        assert status["status"] == "SUCCEEDED"


def test_ray_job_submit_line_of_the_readme_runs_a_service(ray_nodes):
    """deploy/README.md's `ray job submit` form: the token from the environment, this checkout as working_dir."""
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": ray_nodes["token"]}
    env.pop("RAY_ADDRESS", None)
    ray = os.path.join(os.path.dirname(sys.executable), "ray")
    r = subprocess.run([ray, "job", "submit", "--address", ray_nodes["address"], "--submission-id", "deploy-help",
                        "--working-dir", str(REPO), "--", "python", "-m", "services.trainer", "--help"],
                       env=env, capture_output=True, text=True, timeout=180, cwd=REPO)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "--samples MANIFEST_URI" in r.stdout and "succeeded" in r.stdout
