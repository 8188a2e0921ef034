"""ImageNet-scale rehearsal with tiny images: how each cost of the store, catalog and API grows with N images.

A set of N items (1,000 classes, 8-px images, clean + Q(x') rows) is written through the project's own
writer (`SampleSetStore.commit_shard`, `build_manifest`, `publish`) with random teacher verdicts: the
contents are not the point, the sizes are. Then it measures, for that N:
  - fabrication (writer) throughput, shard count, manifest size and load time;
  - sha256 verification throughput (MB/s on one core) and the trainer's preflight verification, first and
    second time (a verified marker keyed by the manifest's digest makes the second one free);
  - catalog ingest (until the set is browsable) and DB size, on SQLite;
  - API latency p50/p99 through real uvicorn on loopback: set list, set page, samples pages at the start,
    middle and end (stored order, by kind, class, accepted, each sort order, a source search), one image.

    python benchmarks/scale.py --images 10000 100000 --json benchmarks/results/scale.json
"""
from __future__ import annotations

import argparse
import gc
import hashlib
import json
import os
import resource
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from datetime import datetime, timezone
from pathlib import Path
from types import SimpleNamespace

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from schemas.manifest import (CodeVersion, ModelInfo, SampleSetConfig, SampleSetPlan,  # noqa: E402
                              SourceFingerprint, Statistics)
from services.sample_store import SampleBatch, SampleSetStore, TeacherVerdicts, build_rows  # noqa: E402
from services.sample_store.publishing import build_manifest  # noqa: E402

CLASSES = 1000
AUTH = "scale-bench-token-0123456789"


def fabricate(root: Path, n: int, classes: int, shard_items: int, size: int = 8, seed: int = 0,
              images: np.ndarray | None = None, accept_rate: float = 0.7) -> Path:
    """A published set of `n` items under `root/sample-sets/scale`, written by the real writer. `images`
    ((P, S, S, 3) uint8, e.g. 224-px photos) are cycled through as clean and Q(x') pixels; default random
    `size`-px ones."""
    rng = np.random.default_rng(seed)
    fp = hashlib.sha256(f"scale/{n}/{seed}".encode()).hexdigest()
    store = SampleSetStore(str(root / "sample-sets" / "scale"))
    num_shards = -(-n // shard_items)
    pixels = rng.integers(0, 256, (256, size, size, 3), dtype=np.uint8) if images is None else images
    size = pixels.shape[1]  # reused: PNG encoding is per row anyway
    for k in range(num_shards):
        first = k * shard_items
        m = min(shard_items, n - first)
        items = np.arange(first, first + m)
        labels = items % classes

        def verdicts(accept_rate: float) -> TeacherVerdicts:
            logits = rng.normal(size=(m, classes)).astype(np.float16)
            pred = logits.argmax(1).astype(np.int64)
            return TeacherVerdicts(logits, pred, rng.random(m).astype(np.float32), rng.random(m) < accept_rate)

        batch = SampleBatch(source_ids=[f"n{y:08d}/img_{i:08d}.JPEG" for i, y in zip(items, labels)],
                            source_paths=[f"/src/n{y:08d}/img_{i:08d}.JPEG" for i, y in zip(items, labels)],
                            labels=labels.astype(np.int64), clean=pixels[items % len(pixels)],
                            adversarial=pixels[(items + 7) % len(pixels)],
                            clean_verdicts=verdicts(1.0), adversarial_verdicts=verdicts(accept_rate))
        stats = Statistics(seen=m, clean=m, accepted=int(batch.adversarial_verdicts.accepted.sum()))
        store.commit_shard(k, first, m, build_rows(fp, [batch]), stats, {"generate": 0.0}, fp, "c" * 64, "c" * 64,
                           "bench")
    model = ModelInfo(kind="identity", name="identity", weights=None, checksum="c" * 64)
    names = [f"class {c}" for c in range(classes)]
    config = SampleSetConfig(preset="tiny", preset_config={}, fingerprint=fp, teacher=model, discretizer=model,
                             attack={}, seed=seed, image_size=size, shard_size=shard_items, batch_size=shard_items,
                             class_ids=[f"n{c:08d}" for c in range(classes)], class_names=names)
    plan = SampleSetPlan(name="scale", config=config, num_shards=num_shards, listing=Statistics(),
                         source=SourceFingerprint(uri="/src", format="imagefolder", num_items=n, num_classes=classes,
                                                  sha256="0" * 64), started_at=datetime.now(timezone.utc))
    store.publish(build_manifest(plan, store.committed_shards(), "bench", 0.0, CodeVersion()))
    return root / "sample-sets" / "scale"


def parquet_source(folder: Path, n: int, classes: int, file_rows: int = 100_000, size: int = 8) -> Path:
    """A Parquet image dataset (Hugging Face layout: image {bytes, path}, string label) of `n` tiny PNGs."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from services.sample_store.rows import encode_png

    folder.mkdir(parents=True, exist_ok=True)
    png = encode_png(np.zeros((size, size, 3), np.uint8))
    image_type = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    for f, start in enumerate(range(0, n, file_rows)):
        items = range(start, min(n, start + file_rows))
        table = pa.table({"image": pa.array([{"bytes": png, "path": f"img_{i:08d}.png"} for i in items], image_type),
                          "label": pa.array([f"n{i % classes:08d}" for i in items])})
        pq.write_table(table, folder / f"train-{f:05d}.parquet", row_group_size=1000)
    return folder


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6


def listing_and_planning(workdir: Path, n: int, shard_items: int, s3: tuple[str, dict] | None = None) -> dict:
    """The generator's listing + planning (prepare_job: listing, shard order, shards, probe) on a Parquet source;
    with `s3` (bucket URL, storage options) the source and the output are on that S3-protocol server."""
    from services.generator import GeneratorConfig, prepare_job

    source = parquet_source(workdir / f"source-{n}", n, CLASSES)
    uri, out, options = str(source), str(workdir / f"gen-{n}"), {}
    if s3 is not None:
        import fsspec

        uri, out, options = f"{s3[0]}/source-{n}", f"{s3[0]}/gen-{n}", s3[1]
        fsspec.filesystem("s3", **options).put(str(source), uri, recursive=True)
    gc.collect()
    rss0, t0 = _rss_mb(), time.perf_counter()
    job = prepare_job(GeneratorConfig(source=uri, out=out, preset="tiny", storage_options=options,
                                      shard_size=shard_items, batch_size=64, progress_bar=False))
    out = {"listing_planning_s": round(time.perf_counter() - t0, 2), "listing_rss_MB": round(_rss_mb() - rss0),
           "generator_shards": len(job.shards)}
    del job
    shutil.rmtree(source, ignore_errors=True)
    return out


def sha256_throughput(set_root: Path) -> float:
    """MB/s of hashing every shard file once (what preflight verification costs per byte)."""
    files = sorted((set_root / "shards").glob("*.parquet"))
    total, t0 = 0, time.perf_counter()
    for f in files:
        h = hashlib.sha256()
        with open(f, "rb") as fh:
            while chunk := fh.read(1 << 22):
                h.update(chunk)
                total += len(chunk)
    return total / 1e6 / (time.perf_counter() - t0)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(store: Path, db_url: str):
    import uvicorn

    from services.api.app import create_app
    from services.api.settings import Settings

    port = free_port()
    settings = Settings(store_uri=str(store), database_url=db_url, auth_token=AUTH, ray_address="http://127.0.0.1:9",
                        sync_interval_s=0)
    server = uvicorn.Server(uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    return server, thread, f"http://127.0.0.1:{port}"


def get(url: str) -> tuple[float, bytes]:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {AUTH}"})
    t0 = time.perf_counter()
    with urllib.request.urlopen(req, timeout=600) as r:
        body = r.read()
    return time.perf_counter() - t0, body


def latency(url: str, repeat: int) -> dict:
    times = [get(url)[0] for _ in range(repeat)]
    times.sort()
    return {"p50_ms": round(1000 * statistics.median(times), 1),
            "p99_ms": round(1000 * times[min(len(times) - 1, int(0.99 * len(times)))], 1)}


def api_cases(base: str, n: int, limit: int = 60) -> dict[str, str]:
    """Named URLs: every page the browser can ask for, at the start, the middle and the end of the set."""
    s = f"{base}/sample-sets/scale"
    rows = 2 * n
    cases = {"set list": f"{base}/sample-sets", "set page": s}
    for where, frac in (("start", 0.0), ("middle", 0.5), ("end", 1.0)):
        off = lambda total: max(0, int(frac * total) - (2 * limit if frac == 1.0 else 0))  # noqa: E731
        cases[f"stored, {where}"] = f"{s}/samples?limit={limit}&offset={off(rows)}"
        cases[f"kind=adversarial, {where}"] = f"{s}/samples?kind=adversarial&limit={limit}&offset={off(n)}"
        cases[f"kind=adversarial&accepted=true, {where}"] = (
            f"{s}/samples?kind=adversarial&accepted=true&limit={limit}&offset={off(int(0.7 * n))}")
        cases[f"order=confidence, {where}"] = f"{s}/samples?order=confidence&limit={limit}&offset={off(rows)}"
        cases[f"kind=adversarial&order=-confidence, {where}"] = (
            f"{s}/samples?kind=adversarial&order=-confidence&limit={limit}&offset={off(n)}")
    cases["class=7"] = f"{s}/samples?class=7&limit={limit}"
    cases["class=7&kind=adversarial, end"] = f"{s}/samples?class=7&kind=adversarial&limit={limit}&offset={max(0, n // CLASSES - limit)}"
    cases["min_confidence=0.9"] = f"{s}/samples?min_confidence=0.9&limit={limit}"
    cases["source search"] = f"{s}/samples?source=img_{n // 2:08d}&limit={limit}"  # one window of the search
    cases["source search, order=-confidence"] = f"{s}/samples?source=img_{n // 2:08d}&order=-confidence&limit={limit}"
    return cases


def bench_one(n: int, workdir: Path, repeat: int, shard_items: int, postgres_url: str | None) -> dict:
    from services.sample_store import load_manifest

    out: dict = {"images": n, "rows": 2 * n}
    store = workdir / f"store-{n}"
    t0 = time.perf_counter()
    set_root = fabricate(store, n, CLASSES, shard_items)
    out["fabricate_s"] = round(time.perf_counter() - t0, 2)
    manifest_path = set_root / "manifest.json"
    out["manifest_bytes"] = manifest_path.stat().st_size
    t0 = time.perf_counter()
    manifest = load_manifest(str(set_root))
    out["manifest_load_ms"] = round(1000 * (time.perf_counter() - t0), 1)
    out["shards"] = len(manifest.shards)
    out["store_bytes"] = sum(s.num_bytes for s in manifest.shards)
    t0 = time.perf_counter()
    markers = SampleSetStore(str(set_root)).committed_shards()
    out["resume_markers_s"] = round(time.perf_counter() - t0, 3)  # what resuming reads: every commit marker
    assert len(markers) == out["shards"]
    out["sha256_MBps"] = round(sha256_throughput(set_root), 1)
    out.update(trainer_open(set_root))
    out.update(preflight_verification(str(set_root)))

    for backend, url in (("sqlite", f"sqlite:///{workdir}/catalog-{n}.db"), ("postgresql", postgres_url)):
        if url is None:
            continue
        out[backend] = catalog(store, n, url, repeat)
    out["max_rss_MB"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return out


def catalog(store: Path, n: int, url: str, repeat: int) -> dict:
    """Ingest the set into the catalog at `url` (time until browsable, DB size), then API latencies over it."""
    from sqlalchemy import text

    from services.api.catalog import crud
    from services.api.catalog.db import create_catalog_engine, migrate, session_factory
    from services.api.catalog.ingest import index_sample_set
    from services.api.store import Store

    out: dict = {}
    engine = create_catalog_engine(url)
    if engine.dialect.name == "postgresql":  # a fresh schema per size
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE; CREATE SCHEMA public"))
    migrate(engine)
    sessions = session_factory(engine)
    browsable: list[float] = []
    done = threading.Event()

    def watch() -> None:
        """What a reader sees during the ingest: the first moment the set and a first page of it are served."""
        while not done.is_set() and not browsable:
            with sessions() as reader:
                if crud.get_sample_set(reader, "scale") is not None and crud.list_samples(reader, "scale", limit=60).rows:
                    browsable.append(time.perf_counter() - t0)
            done.wait(0.05)

    t0 = time.perf_counter()
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    with sessions() as session:
        index_sample_set(session, Store(str(store)), "scale")
    out["ingest_s"] = round(time.perf_counter() - t0, 2)
    done.set()
    watcher.join()
    out["browsable_s"] = round(browsable[0], 2) if browsable else out["ingest_s"]
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            out["db_bytes"] = int(conn.execute(text("SELECT pg_database_size(current_database())")).scalar())
    else:
        with engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        out["db_bytes"] = Path(engine.url.database).stat().st_size
    engine.dispose()

    server, thread, base = serve(store, url)
    try:
        out["api"] = {}
        for name, u in api_cases(base, n).items():
            out["api"][name] = latency(u, repeat)
            nxt = json.loads(get(u)[1]).get("next") if "/samples" in u and ("middle" in name or "end" in name) else None
            if nxt:  # the same depth by keyset: the page after this one, by its cursor
                out["api"][f"{name} (after)"] = latency(u.split("&offset=")[0] + "&after=" + urllib.parse.quote(nxt), repeat)
        _, body = get(f"{base}/sample-sets/scale/samples?limit=1&kind=adversarial")
        sid = json.loads(body)["data"][0]["id"]
        out["api"]["one image"] = latency(f"{base}/samples/{sid}/image", repeat)
        out["ui"] = ui_load(base, store.parent / f"ui-{n}-{engine.dialect.name}.png")
    finally:
        server.should_exit = True
        thread.join(timeout=30)
    return out


def ui_load(base: str, screenshot: Path) -> dict:
    """Seconds until headless chromium shows the set page with its first tiles, then the next page (Next button,
    by cursor); page errors counted. {} without Debian's chromium."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from browser_helpers import CHROMIUM, CHROMIUM_ARGS

    if not Path(CHROMIUM).exists():
        return {}
    from playwright.sync_api import sync_playwright

    errors: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{base}/ui/")
        page.wait_for_load_state("load")
        t0 = time.perf_counter()
        page.goto(f"{base}/ui/#/sets/scale")
        page.wait_for_selector("#samples .tile")
        set_page_s = time.perf_counter() - t0
        page.screenshot(path=str(screenshot))
        t0 = time.perf_counter()
        page.locator("button[data-action=next]").first.click()
        page.wait_for_function("() => location.hash.includes('after=') && "
                               "document.getElementById('view').dataset.hash === location.hash")
        page.wait_for_selector("#samples .tile")
        next_s = time.perf_counter() - t0
        browser.close()
    return {"set_page_s": round(set_page_s, 2), "next_page_s": round(next_s, 2), "page_errors": len(errors),
            "screenshot": str(screenshot)}


def trainer_open(set_root: Path | str, storage_options: dict | None = None) -> dict:
    """The trainer's dataset open as one worker does it (services.trainer.data: row index of the set, then
    pairing clean with accepted Q(x')), seconds and RSS it adds, and the first 256 rows read (decoded)."""
    from services.sample_store import SampleSetDataset
    from services.trainer.data import pair_rows, partner_rows
    from schemas import sample_store as ss

    gc.collect()
    rss0, t0 = _rss_mb(), time.perf_counter()
    kinds, accepted_only, partner = partner_rows("accepted")
    rows = SampleSetDataset(str(set_root), kinds=kinds, accepted_only=accepted_only, cache_row_groups=16,
                            storage_options=storage_options)
    pairs = pair_rows(rows.index[ss.COL_KIND].to_pylist(), rows.index[ss.COL_SOURCE_ID].to_pylist(), partner, None)
    out = {"trainer_open_s": round(time.perf_counter() - t0, 2), "trainer_open_rss_MB": round(_rss_mb() - rss0),
           "trainer_pairs": int(len(pairs))}
    t0 = time.perf_counter()
    for k in range(256):
        rows[int(pairs[k % len(pairs), 0])]
    out["trainer_first_256_rows_s"] = round(time.perf_counter() - t0, 2)
    del rows, pairs
    return out


def preflight_verification(uri: str) -> dict:
    """Seconds the trainer's shard verification takes on a first and a second start (None: not available)."""
    try:
        from services.trainer.preflight import verify_shards
    except ImportError:
        return {}
    from services.sample_store import load_manifest

    manifest = load_manifest(uri)
    out = {}
    for attempt in ("first", "second"):
        t0 = time.perf_counter()
        verify_shards(manifest, SimpleNamespace(samples=uri, storage_options={}), lambda _line: None)
        out[f"preflight_verify_{attempt}_s"] = round(time.perf_counter() - t0, 3)
    return out


def _postgres():
    """The deploy tests' throw-away PostgreSQL server (one definition of how to start it), as a generator that
    yields its connection info for as long as it is iterated and stops the server when closed."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from tests.deploy.conftest import postgres_server

    server = postgres_server.__wrapped__()
    info = next(server)
    try:
        while True:
            yield info
    finally:
        server.close()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=int, nargs="+", default=[10_000, 100_000], help="set sizes to rehearse")
    p.add_argument("--listing-images", type=int, nargs="*", default=None,
                   help="sizes for the generator's listing + planning alone (cheap: 1280000 fits; default: --images)")
    p.add_argument("--shard-items", type=int, default=1000, help="items per shard (the generator's shard_size)")
    p.add_argument("--repeat", type=int, default=20, help="requests per API case (p99 of these)")
    p.add_argument("--workdir", default=None, help="where sets and catalogs go (default: a temporary folder)")
    p.add_argument("--keep", action="store_true", help="keep the workdir")
    p.add_argument("--postgres", action="store_true",
                   help="also on a PostgreSQL server started here (Debian's binaries, as tests/deploy starts it)")
    p.add_argument("--json", default=None, metavar="PATH", help="write the numbers to this JSON file")
    args = p.parse_args()
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="dad-scale-"))
    workdir.mkdir(parents=True, exist_ok=True)
    os.environ["DAD_CACHE_DIR"] = str(workdir / "cache")  # verified-set markers of this run only
    results = []
    postgres = _postgres() if args.postgres else None
    listings = []
    try:
        for n in args.images if args.listing_images is None else args.listing_images:
            listings.append({"images": n, **listing_and_planning(workdir, n, args.shard_items)})
            print(json.dumps(listings[-1]), flush=True)
        for n in args.images:
            r = bench_one(n, workdir, args.repeat, args.shard_items, next(postgres)["url"] if postgres else None)
            results.append(r)
            print(json.dumps(r, indent=1), flush=True)
            if not args.keep:
                shutil.rmtree(workdir / f"store-{n}", ignore_errors=True)
    finally:
        if postgres is not None:
            postgres.close()  # stops the server
        if not args.keep and args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({"machine": f"cpu ({os.cpu_count()} cores)", "listing": listings, "runs": results},
                                              indent=2))


if __name__ == "__main__":
    main()
