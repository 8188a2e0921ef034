"""The run page's loss and throughput plots and the results comparison table, in headless Chromium against
a real uvicorn server (in a thread, with the fake launcher: no Ray needed for what these pages show)."""
from __future__ import annotations

import json
import os
import shutil
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture
def live_server(store, launcher, tmp_path):
    import uvicorn

    from services.api.app import create_app
    from services.api.settings import Settings

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    settings = Settings(store_uri=str(store), database_url=f"sqlite:///{tmp_path}/ui.db", auth_token="t" * 20,
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


def _metrics(folder: Path) -> None:
    """metrics.jsonl as the trainer writes it (services.trainer.metrics)."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = [{"type": "event", "event": "start", "epoch": 0, "step": 0}]
    for step in range(10, 210, 10):
        lines.append({"type": "step", "epoch": step // 100, "step": step, "lr": 0.1, "loss": 3 / (1 + step / 50),
                      "ce": 2 / (1 + step / 50), "kd_clean": 0.6 / (1 + step / 80), "kd_adv": 0.4 / (1 + step / 90),
                      "images_per_s": 900 + step})
        if step % 100 == 0:
            lines.append({"type": "epoch", "epoch": step // 100 - 1, "step": step, "val_top1": 20 + step / 10})
    (folder / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))


def _result(folder: Path, name: str, values: dict) -> None:
    (folder / "results").mkdir(parents=True, exist_ok=True)
    metrics = [{"suite": s, "metric": "mCE" if s == "imagenet-c" else "top1", "value": v,
                "lower_is_better": s == "imagenet-c", "ci95": [v - 1, v + 1], "num_images": 100} for s, v in values.items()]
    (folder / "results" / f"{name}.json").write_text(json.dumps({
        "format": "dad-evaluation", "version": 1, "id": name, "name": name, "created_at": "2026-11-25T10:00:00+00:00",
        "suites": {s: {} for s in values}, "metrics": metrics}))


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium: scripts/install-system-deps.sh")
def test_run_page_plots_and_results_table(live_server, launcher, store, tmp_path):
    url, headers, app = live_server["url"], live_server["headers"], live_server["app"]
    app.state.sync.run_once()  # index the store's sample set
    train = {"id": "train-dad", "kind": "train",
             "config": {"source": "/d", "sample_set": "synthetic", "preset": "tiny", "epochs": 2}}
    assert httpx.post(f"{url}/runs", json=train, headers=headers).status_code == 201
    launcher.jobs["train-dad"]["status"] = "RUNNING"
    _metrics(store / "runs" / "train-dad")
    for run_id, values in (("eval-kd", {"imagenet-r": 40.1, "imagenet-sketch": 28.0, "imagenet-c": 72.0}),
                           ("eval-dad", {"imagenet-r": 45.3, "imagenet-sketch": 31.2, "imagenet-c": 69.5})):
        body = {"id": run_id, "kind": "eval", "config": {"model": f"/models/{run_id}.pth",
                                                         "suites": ["imagenet-r", "imagenet-sketch", "imagenet-c"]}}
        assert httpx.post(f"{url}/runs", json=body, headers=headers).status_code == 201
        launcher.jobs[run_id]["status"] = "SUCCEEDED"
        _result(store / "runs" / run_id, run_id, values)
    app.state.sync.run_once()

    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{url}/ui/#/runs/train-dad")
        page.wait_for_selector("#loss-chart svg")
        assert page.locator("#loss-chart path.series").count() == 4  # loss, ce, kd_clean, kd_adv
        assert page.locator("#throughput-chart path.series").count() == 1
        assert page.locator("h1 [data-status]").inner_text() == "RUNNING"
        page.screenshot(path=str(tmp_path / "train-run.png"), full_page=True)
        page.once("dialog", lambda d: d.accept("wrong-token"))  # the stop button asks for the bearer token
        page.once("dialog", lambda d: d.accept())  # "Wrong or missing token."
        page.click("[data-action=stop]")
        page.wait_for_timeout(300)
        assert launcher.jobs["train-dad"]["status"] == "RUNNING"
        page.once("dialog", lambda d: d.accept("t" * 20))
        page.click("[data-action=stop]")
        page.wait_for_function("() => document.querySelector('h1 [data-status]').textContent === 'STOPPED'")
        assert page.locator("[data-action=stop]").count() == 0

        page.goto(f"{url}/ui/#/results")
        page.wait_for_selector("#results")
        rows = page.locator("#results tr")
        assert rows.count() == 3  # header + 2 runs
        best = page.locator("#results td.best").all_inner_texts()
        assert sorted(best) == ["31.2", "45.3", "69.5"]  # higher top-1 wins, lower mCE wins
        page.screenshot(path=str(tmp_path / "results.png"), full_page=True)

        page.goto(f"{url}/ui/#/sets/synthetic?per_page=5&kind=clean")
        page.wait_for_selector("#samples .tile")
        assert page.locator("#samples .tile").count() == 5
        assert page.locator(".page-info").first.inner_text().startswith("page 1 of 3 · 12 samples")
        browser.close()
    assert not errors, errors
    keep = os.environ.get("DAD_TEST_SCREENSHOTS")
    if keep:
        for name in ("train-run.png", "results.png"):
            shutil.copy(tmp_path / name, Path(keep) / f"ui-{name}")
