"""`python -m services.demo` (the `make demo` command) runs the method and catalogs it; then the README's serve
command shows what it made, page by page, in headless Chromium, as a newcomer would see it."""
from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from process_helpers import wait_for
from services.demo.__main__ import fit_q_args
from services.demo.synthetic import CLASSES, DOMAINS, make_dataset, merge_domains, render

REPO = Path(__file__).resolve().parents[3]
from browser_helpers import CHROMIUM, CHROMIUM_ARGS
TOKEN = "demo-walk-token-0123456789"


def test_synthetic_dataset_has_every_class_in_every_domain_and_split(tmp_path):
    paths = make_dataset(tmp_path, per_class=4, size=32)
    assert set(paths) == {f"{d}/{s}" for d in DOMAINS for s in ("train", "test")}
    for path in paths.values():
        assert sorted(p.name for p in path.iterdir()) == sorted(CLASSES)
    assert len(list(paths["photo/train"].rglob("*.png"))) == 3 * len(CLASSES)
    both = merge_domains(paths, tmp_path / "both")
    assert len(list(both["train"].rglob("*.png"))) == 2 * 3 * len(CLASSES)  # the teacher sees both domains


def test_photo_shapes_stand_out_from_their_background():
    """A small Q keeps a shape only when its fill is far from the background; a near-grey fill drowns (random
    RGB fills came within 44 of the background here, the palette stays above 160, L1 over RGB)."""
    import numpy as np

    rng = np.random.default_rng(0)
    for _ in range(100):
        pixels = np.asarray(render("square", "photo", rng, size=32)).reshape(-1, 3).astype(int)
        colours, counts = np.unique(pixels, axis=0, return_counts=True)
        fill = colours[counts.argmax()]  # the one flat colour; the background is interpolated noise
        background = np.median(pixels[(pixels != fill).any(1)], axis=0)
        assert np.abs(fill - background).sum() > 120, (fill, background)


@pytest.mark.slow  # ~1 min of CPU; the demo test below runs the same stage at one epoch
def test_demo_q_learns_the_shapes_not_only_the_mean_image(tmp_path):
    """The demo's Q settings, on the demo's data: clearly above what the mean image scores on held-out photos
    (tiny-vq at f=4 stays at the mean image's PSNR in this budget)."""
    from services.vq_trainer.cli import main as fit_q

    data = make_dataset(tmp_path / "data", per_class=24, size=32)
    assert fit_q([*fit_q_args(data["photo/train"], tmp_path / "vq", 50), "--eval", f"photo={data['photo/test']}"]) == 0
    report = json.loads((tmp_path / "vq" / "report.json").read_text())
    assert report["psnr_db"]["photo"] > report["mean_image_psnr_db"]["photo"] + 3


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    """The demo at its smallest size (every stage runs, each for one epoch); its output folder and log."""
    out = tmp_path_factory.mktemp("demo") / "demo"
    proc = subprocess.run([sys.executable, "-m", "services.demo", "--out", str(out), "--per-class", "4",
                           "--epochs", "1", "--teacher-epochs", "1", "--vq-epochs", "1", "--objectives", "dad"],
                          capture_output=True, text=True, timeout=900, cwd=REPO)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out, proc.stdout + proc.stderr


def test_demo_fits_q_and_a_teacher_then_generates_trains_evaluates_and_catalogs(demo):
    out, log = demo
    assert (out / "vq" / "vq.ckpt").is_file() and (out / "store" / "runs" / "demo-teacher" / "model.pth").is_file()
    table = (out / "results.md").read_text()
    assert "demo-dad" in table and "demo-teacher" in table and "sketch" in table
    db = sqlite3.connect(out / "store" / "catalog.db")  # where the server looks by default
    runs = dict(db.execute("select id, status from runs").fetchall())
    assert runs == {r: "SUCCEEDED" for r in ("demo-teacher", "demo-generate", "demo-dad", "eval-demo-teacher",
                                             "eval-demo-dad")}
    assert db.execute("select count(*) from sample_sets").fetchone()[0] == 1
    assert db.execute("select count(*) from results").fetchone()[0] == 4  # photo and sketch, teacher and dad
    record = json.loads((out / "store" / "runs" / "demo-dad" / "run.json").read_text())
    assert record["config"]["objective"] == "dad" and record["config"]["sample_set"] == "demo-photo"
    status = json.loads((out / "store" / "runs" / "demo-dad" / "status.json").read_text())
    assert status["started_at"] < status["finished_at"]
    manifest = json.loads((out / "store" / "sample-sets" / "demo-photo" / "manifest.json").read_text())
    assert manifest["config"]["teacher"]["kind"] == "timm"  # the trained teacher, not a random-init CLIP


def test_demo_log_is_readable(demo):
    _, log = demo
    assert "Traceback" not in log and "\x1b[" not in log  # no traceback in a successful run, no colour in a file
    for noise in ("Failed to query Ray Train Controller", "PreemptionWatcher", "Token authentication is enabled"):
        assert noise not in log, noise
    assert re.search(r"epoch 1/1: train loss \d", log)  # per-epoch progress, without a terminal
    assert "make serve STORE=" in log  # the closing line names the serve command


@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium: scripts/install-system-deps.sh")
def test_serving_the_demo_store_shows_its_set_runs_results_and_docs(demo, tmp_path):
    from playwright.sync_api import sync_playwright

    from services.api.local_ray import free_ports

    out, _ = demo
    port, no_ray = free_ports(2)
    # The README's command (make serve STORE=out/demo/store = python -m services.api --store ...); Ray is not
    # needed to browse, so it points at nothing rather than starting a private Ray.
    env = {**os.environ, "DAD_AUTH_TOKEN": TOKEN, "DAD_RAY_ADDRESS": f"http://127.0.0.1:{no_ray}"}
    server = subprocess.Popen([sys.executable, "-m", "services.api", "--store", str(out / "store"),
                               "--port", str(port)], env=env, cwd=REPO, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _answers(f"{url}/health"), 60, "the server did not start")
        run = httpx.get(f"{url}/runs/demo-dad", timeout=60).json()
        assert run["config"]["objective"] == "dad" and run["started_at"] and run["finished_at"]
        errors: list[str] = []
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.on("pageerror", lambda e: errors.append(str(e)))

            def show(hash_: str, *texts: str) -> str:
                page.goto(f"{url}/ui/#/{hash_}")
                page.wait_for_function("texts => texts.every(t => document.getElementById('view').innerText.includes(t))",
                                       arg=list(texts), timeout=20_000)
                return page.locator("#view").inner_text()

            show("sets", "demo-photo")
            show("sets/demo-photo", *CLASSES)
            page.wait_for_function("() => { const imgs = [...document.querySelectorAll('#view img')];"
                                   " return imgs.length >= 6 && imgs.every(i => i.complete && i.naturalWidth > 0); }",
                                   timeout=20_000)  # clean, Q(x) and Q(x') tiles, decoded
            show("runs", "demo-teacher", "demo-generate", "demo-dad", "eval-demo-dad", "SUCCEEDED")
            text = show("runs/demo-dad", "objective", "demo-photo")
            assert '"demo": true' not in text
            page.wait_for_function("() => document.querySelectorAll('#view svg path').length > 0", timeout=20_000)
            show("results", "demo-dad", "demo-teacher", "sketch", "photo")
            page.goto(f"{url}/docs")
            page.wait_for_selector(".opblock-summary-path", timeout=20_000)
            assert "/runs" in page.locator(".opblock-summary-path").all_inner_texts()
            browser.close()
        assert not errors, errors
    finally:
        server.terminate()
        server.wait(timeout=30)


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False
