"""What a person sees on each page, in headless Chromium against a real uvicorn server (in a thread, with the
fake launcher: no Ray needed for what these pages show): run charts (axes, epochs, hover), downloads, the runs
list (filters, duration, key metric, output), comparing runs, results (interval, CSV) and the sample browser
(full-size view, sort, search)."""
from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import pytest

from browser_helpers import CHROMIUM, CHROMIUM_ARGS, needs_chromium


def _metrics(folder: Path, scale: float = 1.0) -> None:
    """metrics.jsonl as the trainer writes it (services.trainer.metrics)."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = [{"type": "event", "event": "start", "epoch": 0, "step": 0}]
    for step in range(10, 210, 10):
        lines.append({"type": "step", "epoch": step // 100, "step": step, "lr": 0.1,
                      "loss": scale * 3 / (1 + step / 50), "ce": 2 / (1 + step / 50), "kd_clean": 0.6 / (1 + step / 80),
                      "kd_adv": 0.4 / (1 + step / 90), "accepted_fraction": 0.4 + step / 1000,
                      "images_per_s": 900 + step})
        if step % 100 == 0:
            lines.append({"type": "epoch", "epoch": step // 100 - 1, "step": step, "val_top1": (20 + step / 10 / scale) / 100})
    (folder / "metrics.jsonl").write_text("".join(json.dumps({"version": 1, **x}) + "\n" for x in lines))


def _result(folder: Path, name: str, values: dict) -> None:
    (folder / "results").mkdir(parents=True, exist_ok=True)
    metrics = [{"suite": s, "metric": "mCE" if s == "imagenet-c" else "top1", "value": v,
                "lower_is_better": s == "imagenet-c", "ci95": [v - 1, v + 1], "num_images": 100} for s, v in values.items()]
    (folder / "results" / f"{name}.json").write_text(json.dumps({
        "format": "dad-evaluation", "version": 1, "id": name, "name": name, "created_at": "2026-11-25T10:00:00+00:00",
        "suites": {s: {} for s in values}, "metrics": metrics}))


@contextlib.contextmanager
def browser_page():
    """A headless Chromium page; fails the test on any uncaught page error."""
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900}, accept_downloads=True)
        page.on("pageerror", lambda e: errors.append(str(e)))
        yield page
        browser.close()
    assert not errors, errors


def wait_rendered(page, hash_part: str = "") -> None:
    """Wait until the page shows the current URL (after a filter, sort or search changed it)."""
    page.wait_for_function("(part) => location.hash.includes(part) && "
                           "document.getElementById('view').dataset.hash === location.hash", arg=hash_part)


def _submit(url, headers, launcher, run_id, kind, config, status, **job):
    assert httpx.post(f"{url}/runs", json={"id": run_id, "kind": kind, "config": config}, headers=headers,
                      timeout=60).status_code == 201  # the first submission imports torch
    launcher.jobs[run_id].update(status=status, **job)


@needs_chromium
def test_run_page_plots_and_results_table(live_server, launcher, store, tmp_path):
    url, headers, app = live_server["url"], live_server["headers"], live_server["app"]
    app.state.sync.run_once()  # index the store's sample set
    train = {"id": "train-dad", "kind": "train",
             "config": {"source": "/d", "sample_set": "synthetic", "preset": "tiny", "epochs": 2}}
    assert httpx.post(f"{url}/runs", json=train, headers=headers, timeout=60).status_code == 201
    launcher.jobs["train-dad"]["status"] = "RUNNING"
    _metrics(store / "runs" / "train-dad")
    for run_id, values in (("eval-kd", {"imagenet-r": 40.1, "imagenet-sketch": 28.0, "imagenet-c": 72.0}),
                           ("eval-dad", {"imagenet-r": 45.3, "imagenet-sketch": 31.2, "imagenet-c": 69.5})):
        body = {"id": run_id, "kind": "eval", "config": {"model": f"/models/{run_id}.pth",
                                                         "suites": ["imagenet-r", "imagenet-sketch", "imagenet-c"]}}
        assert httpx.post(f"{url}/runs", json=body, headers=headers, timeout=60).status_code == 201
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
        assert page.locator("#loss-chart path.series").count() == 5  # loss, ce, kd_clean, kd_adv, accepted_fraction
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
        best = page.locator("#results td.best .value").all_inner_texts()
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


TRAIN_CONFIG = {"source": "/d", "sample_set": "synthetic", "preset": "tiny", "epochs": 2}
_NUMBER = re.compile(r"^-?\d+(\.\d{1,2})?$")  # a readable tick: no 0.30000000000000004, no 7 digits


@needs_chromium
def test_run_page_axes_epochs_hover_downloads_and_missing_log(live_server, launcher, store):
    url, headers, app = live_server["url"], live_server["headers"], live_server["app"]
    app.state.sync.run_once()
    t0 = datetime(2026, 11, 30, 10, 0, tzinfo=timezone.utc)
    _submit(url, headers, launcher, "train-dad", "train", TRAIN_CONFIG, "SUCCEEDED", started_at=t0,
            finished_at=t0 + timedelta(minutes=2, seconds=5), logs_gone=True)
    folder = store / "runs" / "train-dad"
    _metrics(folder)
    (folder / "model.pth").write_bytes(b"weights" * 1000)

    with browser_page() as page:
        page.goto(f"{url}/ui/#/runs/train-dad")
        page.wait_for_selector("#loss-chart svg")
        # accepted_fraction has its own axis (right, 0..1), the losses theirs; every tick label is a round number
        assert page.locator("#loss-chart path.series.right").count() == 1
        left = page.locator("#loss-chart text.tick.y").all_text_contents()
        right = page.locator("#loss-chart text.tick.y2").all_text_contents()
        xs = page.locator("#loss-chart text.tick.x").all_text_contents()
        assert float(right[0]) == 0 and float(right[-1]) == 1 and len(right) >= 3
        assert all(_NUMBER.match(t) for t in left + right + xs), (left, right, xs)
        assert float(left[-1]) >= 3 * 1 / (1 + 10 / 50) - 1e-9  # the axis covers the largest loss
        assert "accepted fraction" in page.locator("#loss-chart svg").text_content()
        legend = page.locator("#loss-chart .legend span").all_inner_texts()
        assert "loss" in legend and "version" not in legend, legend  # the record's format version is no curve
        assert page.locator("#loss-chart line.marker").count() == 2  # ends of epochs 1 and 2
        assert page.locator("#loss-chart text.marker-label").all_text_contents() == ["epoch 1", "epoch 2"]
        assert page.locator("#val-chart path.series").count() == 1
        # the trainer logs a fraction (0.3, 0.4); the page, labelled in percent, shows 30..40
        val_ticks = [float(t) for t in page.locator("#val-chart text.tick.y").all_text_contents()]
        assert val_ticks[0] <= 30 and val_ticks[-1] >= 40, val_ticks
        # hovering shows each series' value at the nearest step
        assert page.locator("#loss-chart .chart-tip").is_hidden()
        box = page.locator("#loss-chart rect.hit").bounding_box()
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        tip = page.locator("#loss-chart .chart-tip")
        tip.wait_for(state="visible")
        text = tip.inner_text()
        assert re.search(r"step \d+", text) and "loss: " in text and "accepted_fraction: 0.5" in text, text
        # downloads are real files; the missing Ray log is a sentence, not Ray's 404
        assert "2 min 5 s" in page.locator("dl.kv").first.inner_text()
        href = page.locator("#downloads a[data-file='model.pth']").get_attribute("href")
        assert httpx.get(url + href).content == (folder / "model.pth").read_bytes()
        href = page.locator("#downloads a[data-file='metrics.jsonl']").get_attribute("href")
        assert httpx.get(url + href).text == (folder / "metrics.jsonl").read_text()
        with page.expect_download() as download:
            page.click("#downloads a[data-file='model.pth']")
        assert Path(download.value.path()).read_bytes() == (folder / "model.pth").read_bytes()
        missing = page.locator("#log-missing").inner_text()
        assert missing.startswith("Ray has no log for this job") and "404" not in missing
        assert page.locator("#log").count() == 0


@needs_chromium
def test_runs_list_filters_output_duration_key_metric_and_compare(live_server, launcher, store):
    url, headers, app = live_server["url"], live_server["headers"], live_server["app"]
    app.state.sync.run_once()
    t0 = datetime(2026, 11, 30, 10, 0, tzinfo=timezone.utc)
    gen = {"source": "/data", "preset": "tiny", "limit": 10}
    _submit(url, headers, launcher, "gen-ok", "generate", {**gen, "set_name": "synthetic"}, "SUCCEEDED",
            started_at=t0, finished_at=t0 + timedelta(seconds=42))
    _submit(url, headers, launcher, "gen-bad", "generate", gen, "FAILED", started_at=t0, finished_at=t0 + timedelta(seconds=3))
    for run_id, scale in (("train-dad", 1.0), ("train-ce", 1.5)):
        _submit(url, headers, launcher, run_id, "train", {**TRAIN_CONFIG, "seed": int(scale * 10)}, "SUCCEEDED",
                started_at=t0, finished_at=t0 + timedelta(hours=1, minutes=3))
        _metrics(store / "runs" / run_id, scale)
    _submit(url, headers, launcher, "eval-dad", "eval", {"model": "/m.pth", "suites": ["imagenet-r"]}, "SUCCEEDED")
    _result(store / "runs" / "eval-dad", "eval-dad", {"imagenet-r": 45.3})
    app.state.sync.run_once()

    with browser_page() as page:
        page.goto(f"{url}/ui/#/runs")
        page.wait_for_selector("#runs tr[data-run='train-ce']")
        cell = lambda run, col: page.locator(f"#runs tr[data-run='{run}'] td[data-col='{col}']")
        # the output column shows what the run made, and links only to what exists
        assert cell("gen-ok", "output").inner_text() == "sample set synthetic"
        assert cell("gen-ok", "output").locator("a").get_attribute("href") == "#/sets/synthetic"
        assert cell("gen-bad", "output").locator("a").count() == 0
        assert "no sample set (run failed)" in cell("gen-bad", "output").inner_text()
        assert cell("train-dad", "output").locator("a").get_attribute("href") == "/runs/train-dad/files/model.pth"
        assert cell("eval-dad", "output").locator("a").get_attribute("href") == "#/results?run=eval-dad"
        assert cell("gen-ok", "duration").inner_text() == "42 s"
        assert cell("train-dad", "duration").inner_text() == "1 h 3 min"
        assert cell("train-dad", "metric").inner_text() == "val top-1 40.0%"
        assert cell("eval-dad", "metric").inner_text() == "imagenet-r top1 45.3"
        assert cell("gen-ok", "metric").inner_text().startswith("acceptance ")
        # filters
        page.select_option("#run-filters select[name=kind]", "generate")
        wait_rendered(page, "kind=generate")
        assert page.locator("#runs tr[data-run]").count() == 2
        page.select_option("#run-filters select[name=status]", "FAILED")
        wait_rendered(page, "status=FAILED")
        assert page.locator("#runs tr[data-run]").count() == 1
        assert page.locator("#runs tr[data-run]").get_attribute("data-run") == "gen-bad"
        # tick two train runs and overlay their curves
        page.goto(f"{url}/ui/#/runs?kind=train")
        page.wait_for_function("() => document.querySelectorAll('#runs tr[data-run]').length === 2")
        page.check("input[name=compare][value='train-dad']")
        wait_rendered(page, "compare=train-dad")
        page.check("input[name=compare][value='train-ce']")
        wait_rendered(page, "train-ce")
        page.click("[data-action=compare]")
        wait_rendered(page, "#/compare?runs=")
        assert page.locator("#compare-loss path.series").count() == 2
        assert sorted(page.locator("#compare-loss .legend span").all_inner_texts()) == ["train-ce", "train-dad"]
        assert page.locator("#compare-val path.series").count() == 2
        assert float(page.locator("#compare-val text.tick.y").all_text_contents()[-1]) >= 40
        assert page.locator("#compare-accepted path.series").count() == 2
        page.uncheck("#compare-picker input[value='train-ce']")
        page.wait_for_function("() => document.querySelectorAll('#compare-loss path.series').length === 1")


@needs_chromium
def test_results_show_interval_and_count_name_only_present_suites_and_export_csv(live_server, launcher, store):
    url, headers, app = live_server["url"], live_server["headers"], live_server["app"]
    for run_id, value in (("eval-kd", 40.1), ("eval-dad", 45.3)):
        _submit(url, headers, launcher, run_id, "eval", {"model": f"/{run_id}.pth", "suites": ["imagenet-r"]}, "SUCCEEDED")
        _result(store / "runs" / run_id, run_id, {"imagenet-r": value, "imagenet-sketch": value - 10})
    app.state.sync.run_once()

    with browser_page() as page:
        page.goto(f"{url}/ui/#/results?run=eval-dad")
        page.wait_for_selector("#results")
        cell = page.locator("#results tr[data-run='eval-dad'] td[data-suite='imagenet-r']")
        assert cell.locator(".value").inner_text() == "45.3"
        assert cell.locator(".ci").inner_text() == "95% CI 44.3–46.3 · n=100"  # visible, not only in a tooltip
        assert cell.locator(".ci").is_visible()
        legend = page.locator("#results-legend").inner_text()
        assert legend == "top-1 accuracy (%)" and "ImageNet-C" not in page.locator("main").inner_text()
        assert page.locator("#results tr.focus").get_attribute("data-run") == "eval-dad"
        with page.expect_download() as download:
            page.click("#results-csv")
        assert download.value.suggested_filename == "results.csv"
        rows = list(csv.DictReader(io.StringIO(Path(download.value.path()).read_text())))
        assert len(rows) == 4
        dad_r = next(r for r in rows if r["run_id"] == "eval-dad" and r["suite"] == "imagenet-r")
        assert (dad_r["value"], dad_r["ci95_low"], dad_r["ci95_high"], dad_r["num_images"]) == ("45.3", "44.3", "46.3", "100")


@needs_chromium
def test_sample_browser_full_size_view_sort_and_search(live_server):
    url, app = live_server["url"], live_server["app"]
    app.state.sync.run_once()
    confidences = lambda page: [float(t.split()[-1].rstrip("%")) for t in
                                page.locator("#samples .tile .top5 > div:nth-child(2) li:first-child").all_inner_texts()]

    with browser_page() as page:
        page.goto(f"{url}/ui/#/sets/synthetic")
        page.wait_for_selector("#samples .tile img")
        assert page.locator("#lightbox").count() == 0
        # what the attack changed: the set's aggregates from the manifest, and each item's next to its images
        diag = httpx.get(f"{url}/sample-sets/synthetic", timeout=60).json()["diagnostics"]
        row = page.locator("#set-diagnostics tr[data-metric=l2_vs_qx] td")
        assert row.nth(1).inner_text() == f"{diag['metrics']['l2_vs_qx']['mean']:.3g}"
        assert row.nth(5).inner_text() == "12" and page.locator("#set-diagnostics .warning").count() == 0
        page.locator("#class-diagnostics summary").click()
        dog = page.locator("#class-diagnostics tr[data-label='1'] td")
        assert dog.nth(0).inner_text() == "dog"
        assert dog.nth(1).inner_text() == f"{diag['per_class']['1']['l2_vs_qx']:.3g}"
        assert page.locator("#samples .tile .diag").count() == page.locator("#samples .tile").count() > 0
        first = page.locator("#samples .tile").first
        assert first.locator(".diag").inner_text().startswith("vs Q(x): L2 ")
        source = first.locator(".meta").inner_text().split("·")[1].split()[0]
        first.locator("img[data-variant=adversarial]").click()
        box = page.locator("#lightbox")
        box.wait_for(state="visible")
        assert source in box.inner_text() and box.locator("img").count() == 2  # x and Q(x') (no Q(x) stored)
        assert box.locator(".diag").inner_text() == first.locator(".diag").inner_text()
        page.wait_for_function("() => [...document.querySelectorAll('#lightbox img')].every((i) => i.complete && i.naturalWidth === 16)")
        shown = box.locator("img").first.bounding_box()
        thumb = first.locator("img").first.bounding_box()
        assert shown["width"] > 2 * thumb["width"]  # full size, not the thumbnail
        page.keyboard.press("Escape")
        assert page.locator("#lightbox").count() == 0
        first.locator("img[data-variant=clean]").click()
        page.locator("#lightbox [data-action=close]").click()
        assert page.locator("#lightbox").count() == 0

        stored = confidences(page)
        page.select_option("#filters select[name=order]", "-confidence")
        wait_rendered(page, "order=-confidence")
        down = confidences(page)
        assert down == sorted(down, reverse=True) and sorted(down) == sorted(stored) and down != stored
        page.select_option("#filters select[name=order]", "confidence")
        wait_rendered(page, "order=confidence")
        assert confidences(page) == sorted(stored)

        page.fill("#filters input[name=source]", "dog/")
        page.press("#filters input[name=source]", "Enter")
        wait_rendered(page, "source=dog")
        assert page.locator("#samples .tile").count() == 4
        assert all("dog/" in t for t in page.locator("#samples .tile .meta").all_inner_texts())
        assert page.locator(".page-info").first.inner_text().endswith("4 samples")
        page.fill("#filters input[name=source]", "no-such-path")
        page.press("#filters input[name=source]", "Enter")
        wait_rendered(page, "source=no-such-path")
        assert page.locator("#samples .tile").count() == 0
        assert page.get_by_text("No sample matches these filters.").is_visible()
        # `accepted` is the verdict on Q(x'): for clean rows (null there) the filter is off, not "nothing matches"
        page.goto(f"{url}/ui/#/sets/synthetic?kind=clean&accepted=false")
        wait_rendered(page, "kind=clean")
        assert page.locator("#filters select[name=accepted]").is_disabled()
        assert page.locator("#samples .tile").count() == 12


@needs_chromium
def test_a_set_being_indexed_is_browsable_and_says_how_far_indexing_got(live_server):
    from sqlalchemy import update

    from services.api.catalog.models import SampleSet

    url, app = live_server["url"], live_server["app"]
    app.state.sync.run_once()
    with app.state.sync.sessions() as session:  # as crud.replace_sample_set leaves it between chunks
        total = session.get(SampleSet, "synthetic").num_rows
        session.execute(update(SampleSet).where(SampleSet.id == "synthetic").values(ready=False, indexed_rows=10))
        session.commit()
    with browser_page() as page:
        page.goto(f"{url}/ui/#/sets/synthetic?kind=clean")
        page.wait_for_selector("#samples .tile img")
        banner = page.locator("#set-indexing").inner_text()
        assert banner.startswith(f"Indexing: 10 of {total} rows so far") and "cover these rows" in banner
        page.goto(f"{url}/ui/#/sets")
        page.wait_for_selector("#sets")
        assert "indexing" in page.locator("#sets tr", has_text="synthetic").inner_text()


@needs_chromium
def test_an_experiment_report_run_shows_its_report_and_figures(live_server, store):
    """experiments.pacs records its report as a run (pacs-report): the page links report.md and shows the figures."""
    from PIL import Image

    from services.api.store import Store, record_finished_run

    url, app = live_server["url"], live_server["app"]
    folder = store / "runs" / "pacs-report"
    folder.mkdir(parents=True)
    (folder / "report.md").write_text("# PACS experiment\n| `dad` − `kd` | +1.0 |\n")
    Image.new("RGB", (40, 20), "red").save(folder / "results_bar.png")  # no attack_grid.png: that one is left out
    record_finished_run(Store(str(store)), "pacs-report", "eval", ["python", "-m", "experiments.pacs"],
                        {"experiment": "pacs", "report": True})
    from services.api.catalog.ingest import rebuild

    with app.state.sync.sessions() as session:  # what `make catalog-rebuild` does
        rebuild(session, app.state.store)
    with browser_page() as page:
        page.goto(f"{url}/ui/#/runs/pacs-report")
        page.wait_for_selector("#downloads a[data-file='report.md']")
        href = page.locator("#downloads a[data-file='report.md']").get_attribute("href")
        r = httpx.get(url + href, headers=live_server["headers"])
        assert r.text.startswith("# PACS experiment") and r.headers["content-type"].startswith("text/markdown")
        page.wait_for_function("() => { const i = document.querySelector(\"img[data-figure='results_bar.png']\");"
                               " return i && i.complete && i.naturalWidth === 40; }")
        page.wait_for_function("() => !document.querySelector(\"img[data-figure='attack_grid.png']\")")


@pytest.mark.parametrize("epochs", [2, 8, 12, 37])
def test_epoch_axes_label_whole_epochs_only(live_server, epochs):
    """An epoch axis never shows 2.5 or 7.50: whole epochs, however many there are."""
    with browser_page() as page:
        page.goto(f"{live_server['url']}/ui/")
        labels = page.evaluate("""(n) => {
            const points = Array.from({ length: n }, (_, i) => [i + 1, 20 + i]);
            const node = Charts.lines([{ name: "val_top1", points }], { xLabel: "epoch", integerX: true });
            document.body.append(node);
            return [...node.querySelectorAll("text.tick.x")].map((t) => t.textContent);
        }""", epochs)
        assert labels and all(re.fullmatch(r"\d+", t) for t in labels), labels
        assert 1 <= int(labels[0]) and int(labels[-1]) <= epochs
