"""End to end: a real uvicorn server submits a tiny generate run to a real local Ray (Job Submission API),
the generator publishes a sample set, and headless Chromium browses it.

The Ray cluster is this module's own `ray start --head --block` (its job server is what `ray job submit`
talks to), on free loopback ports and a private temp dir, with token auth as Ray 2.60 defaults to it; the
teardown stops its jobs and then only the processes it started (never `ray stop`, which would kill every
Ray on the machine).
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from process_helpers import pids_mentioning, stop, wait_for

REPO = Path(__file__).resolve().parents[3]
from browser_helpers import CHROMIUM, CHROMIUM_ARGS
API_TOKEN = "e2e-api-token-" + secrets.token_hex(8)
RUN_ID = "tiny-gen-1"
PER_CLASS = 40  # 3 classes x 40 = 120 items: two pages of 100 in the browser


@pytest.fixture(scope="module")
def ray_cluster():
    """{"address", "token", "jobs"}: a `ray start --head` with its job server on 127.0.0.1, for this module.

    Started the way a user starts one (services.api.local_ray wraps the command); the API server below
    is pointed at it with --ray-address, as it would be at any cluster.
    """
    from ray.job_submission import JobSubmissionClient

    from services.api.local_ray import LocalRay, free_ports

    ray = LocalRay(num_cpus=2, dashboard_port=free_ports(1)[0], object_store_bytes=300 * 1024 * 1024,
                   env={"HF_HUB_OFFLINE": "1"})
    try:
        address = ray.start()
        jobs = JobSubmissionClient(address, headers={"Authorization": f"Bearer {ray.token}"})
        yield {"address": address, "token": ray.token, "jobs": jobs}
    finally:
        ray.stop()
        assert not pids_mentioning(ray.temp_dir)


@pytest.fixture(scope="module")
def api_server(ray_cluster, tmp_path_factory):
    """A real `python -m services.api` (uvicorn) on a free port, against the module's Ray."""
    from services.api.local_ray import free_ports

    store = tmp_path_factory.mktemp("e2e-store")
    (port,) = free_ports(1)
    env = {**os.environ, "DAD_AUTH_TOKEN": API_TOKEN, "DAD_RAY_AUTH_TOKEN": ray_cluster["token"],
           "DAD_JOB_PYTHON": sys.executable, "DAD_SYNC_INTERVAL_S": "1", "HF_HUB_OFFLINE": "1",
           # The job runs in Ray's working dir: make the repository importable however it was installed.
           "DAD_JOB_ENV": json.dumps({"PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}),
           "PYTHONPATH": str(REPO)}
    log_path = store / "server.log"
    log = open(log_path, "wb")
    proc = subprocess.Popen([sys.executable, "-m", "services.api", "--port", str(port), "--store", str(store),
                             "--ray-address", ray_cluster["address"], "--log-level", "warning"],
                            env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: httpx.get(f"{url}/health").status_code == 200, 60, "the API server did not start")
        yield {"url": url, "store": store, "log": log_path}
    finally:
        stop(proc)
        log.close()


@pytest.fixture(scope="module")
def generated_run(api_server, ray_cluster, make_image_folder, tmp_path_factory):
    """Submit the tiny generate run (twice: the retry must not start a second job) and wait for its set."""
    source = make_image_folder(tmp_path_factory.mktemp("e2e-source"), per_class=PER_CLASS, size=(40, 40))
    body = {"id": RUN_ID, "kind": "generate",
            "config": {"source": str(source), "preset": "tiny", "shard_size": 64, "batch_size": 32,
                       "cpus_per_actor": 0.5}}
    headers = {"Authorization": f"Bearer {API_TOKEN}"}
    url = api_server["url"]
    first = httpx.post(f"{url}/runs", json=body, headers=headers, timeout=30)
    retry = httpx.post(f"{url}/runs", json=body, headers=headers, timeout=30)
    run = wait_for(lambda: (lambda r: r if r["status"] in ("SUCCEEDED", "FAILED", "STOPPED") else None)(
        httpx.get(f"{url}/runs/{RUN_ID}", timeout=30).json()), 240, "the generate run did not finish", 1.0)
    sample_set = wait_for(lambda: (lambda r: r.json() if r.status_code == 200 else None)(
        httpx.get(f"{url}/sample-sets/{RUN_ID}", timeout=30)), 60, "the sample set was not indexed")
    return {"first": first, "retry": retry, "run": run, "set": sample_set, "source": source}


def test_generate_run_through_ray_job_submission(generated_run, ray_cluster, api_server):
    first, retry, run = generated_run["first"], generated_run["retry"], generated_run["run"]
    assert first.status_code == 201, first.text
    assert retry.status_code == 200 and retry.json()["id"] == RUN_ID
    assert run["status"] == "SUCCEEDED", (run["message"], run["log_tail"])
    jobs = [j for j in ray_cluster["jobs"].list_jobs() if j.submission_id == RUN_ID]
    assert len(jobs) == 1  # one Ray job for two POSTs
    assert "services.generator" in jobs[0].entrypoint
    assert "sample set:" in run["log_tail"]
    assert run["progress"]["state"] == "succeeded" and run["progress"]["done_items"] == 3 * PER_CLASS
    s = generated_run["set"]
    assert s["num_items"] == 3 * PER_CLASS and s["num_rows"] == 9 * PER_CLASS  # x, Q(x), Q(x') per image
    assert s["lineage"]["run_id"] == RUN_ID and s["lineage"]["teacher"]["name"] == "tiny-clip-vit"
    assert s["lineage"]["source"]["uri"].endswith(generated_run["source"].name)
    assert (api_server["store"] / "runs" / RUN_ID / "run.json").exists()
    assert json.loads((api_server["store"] / "runs" / RUN_ID / "status.json").read_text())["status"] == "SUCCEEDED"


def _browser():
    from playwright.sync_api import sync_playwright

    pw = sync_playwright().start()
    browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    return pw, browser


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium: scripts/install-system-deps.sh")
def test_browser_sample_set_and_runs_pages(generated_run, api_server, tmp_path):
    url = api_server["url"]
    pw, browser = _browser()
    errors: list[str] = []
    try:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{url}/ui/#/sets/{RUN_ID}")
        page.wait_for_selector("#samples .tile")
        assert page.locator("#samples .tile").count() == 100
        assert page.locator(".page-info").first.inner_text().startswith(f"page 1 of 2 · {3 * PER_CLASS}")
        assert page.locator("#class-chart rect.bar").count() == 3
        # scroll through the grid so lazy images load, then every thumbnail must have decoded
        page.evaluate("""async () => { for (let y = 0; y < document.body.scrollHeight; y += 500) {
                           window.scrollTo(0, y); await new Promise(r => setTimeout(r, 30)); } window.scrollTo(0, 0); }""")
        page.wait_for_function("""() => [...document.querySelectorAll('#samples img')].every(i => i.complete)""")
        widths = page.eval_on_selector_all("#samples img", "imgs => imgs.map(i => i.naturalWidth)")
        assert len(widths) == 300 and min(widths) > 0  # clean | Q(x) | Q(x') of each of the 100 tiles
        assert page.locator("#samples .missing").count() == 0
        page.screenshot(path=str(tmp_path / "sample-set.png"))

        page.locator("[data-action=next]").first.click()
        page.wait_for_function("() => document.querySelector('.page-info').textContent.startsWith('page 2 of 2')")
        assert page.locator("#samples .tile").count() == 3 * PER_CLASS - 100

        page.select_option("#filters select[name=class]", index=2)  # the second class
        page.wait_for_function("() => document.querySelector('.page-info').textContent.startsWith('page 1 of 1')")
        names = set(page.locator("#samples .meta strong").all_inner_texts())
        assert len(names) == 1 and page.locator("#samples .tile").count() == PER_CLASS

        page.goto(f"{url}/ui/#/runs")
        row = page.locator(f"tr[data-run='{RUN_ID}']")
        row.wait_for()
        assert row.locator("[data-status]").inner_text() == "SUCCEEDED"
        row.locator("a").first.click()
        page.wait_for_selector("#progress")
        assert "120 / 120" in page.locator("#progress").inner_text()
        assert "sample set:" in page.locator("#log").inner_text()
        page.screenshot(path=str(tmp_path / "run.png"), full_page=True)
    finally:
        browser.close()
        pw.stop()
    assert not errors, errors
    keep = os.environ.get("DAD_TEST_SCREENSHOTS")
    if keep:  # for a human to look at
        for name in ("sample-set.png", "run.png"):
            shutil.copy(tmp_path / name, Path(keep) / f"e2e-{name}")

