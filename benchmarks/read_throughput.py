"""Read cost of the trainer's data path at 224 px, in CPU cores per GPU, from local disk and from S3.

A set of 224-px items (clean + Q(x') rows, 1,000 classes, float16 logits: ImageNet's row sizes) is written by
the project's own writer (benchmarks/scale.py's `fabricate`); its pixels are PACS photos (center square,
resized to 224), or smooth synthetic images when no photo folder is given. Then, for the set on local disk
and on an S3-protocol server (moto on 127.0.0.1, as the tests use):
  - the trainer's own data path: `build_datasets` + `train_loader` of services.trainer.data for a `dad` run
    with stored logits (no augmentation: stored logits forbid it), ONE loader worker process = one core;
    dataset open, time to first batch, and steady decoded images/s (clean + Q(x')) after it;
  - per-core decode of the same photos as the store's PNG rows against JPEG, and the same loader over a copy
    of the set whose image bytes are JPEG q90 (writer's PNG encoder swapped: a what-if, not a stored format),
    to say what a format change buys;
  - cores per GPU = the GPU's images/s (benchmarks/results/trainer_step_gpu.json) / decoded images/s per core.
At a smaller N of tiny images it also times, on the S3 server, the generator's listing + planning and the
trainer's dataset open (index + pairing; its shard index reads alone, one after another as the reader does
and 8 at once), to extrapolate to 1.28 M.

    python benchmarks/read_throughput.py --photos ../shared/data/pacs/photo --json benchmarks/results/read_throughput.json
"""
from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.scale import CLASSES, fabricate, listing_and_planning, trainer_open  # noqa: E402

GPU_RESULTS = ROOT / "benchmarks" / "results" / "trainer_step_gpu.json"


def photo_pool(folder: Path | None, count: int, size: int) -> np.ndarray:
    """(count, size, size, 3) uint8: photos from `folder` (center square, resized), else smooth synthetic."""
    from PIL import Image

    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg", ".png"))[:count] \
        if folder else []
    out = []
    for f in files:
        with Image.open(f) as im:
            im = im.convert("RGB")
            s = min(im.size)
            left, top = (im.width - s) // 2, (im.height - s) // 2
            out.append(np.asarray(im.resize((size, size), Image.BICUBIC, box=(left, top, left + s, top + s))))
    rng = np.random.default_rng(0)
    while len(out) < count:  # smooth synthetic: a coarse random grid upsampled (compresses like a soft photo)
        base = rng.integers(0, 256, (size // 16, size // 16, 3), dtype=np.uint8)
        out.append(np.asarray(Image.fromarray(base).resize((size, size), Image.BICUBIC)))
    return np.stack(out)


def encode_jpeg(pixels: np.ndarray, quality: int = 90) -> bytes:
    """(H, W, 3) uint8 -> JPEG bytes: the what-if codec (the store writes PNG, lossless; see schemas.sample_store)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def decode_per_core(pool: np.ndarray) -> dict:
    """Decoded images per CPU second and KB per image: the store's PNG rows against JPEG (PIL, as the loader)."""
    from PIL import Image

    from services.sample_store.rows import decode_png, encode_png

    def jpeg(q: int):
        return lambda px: encode_jpeg(px, q)

    def dec(data: bytes) -> np.ndarray:
        with Image.open(io.BytesIO(data)) as img:
            return np.asarray(img.convert("RGB"))

    out = {}
    for name, enc, decode in (("png (store, zlib 1)", encode_png, decode_png), ("jpeg q95", jpeg(95), dec),
                              ("jpeg q90", jpeg(90), dec)):
        blobs = [enc(px) for px in pool]
        decode(blobs[0])
        t0 = time.process_time()
        for b in blobs:
            decode(b)
        out[name] = {"images_per_cpu_s": round(len(blobs) / (time.process_time() - t0), 1),
                     "KB_per_image": round(sum(map(len, blobs)) / len(blobs) / 1024, 1)}
    return out


def descendants_cpu_s() -> float:
    """CPU seconds (user + system) used so far by this process's descendants (the loader's worker), from /proc:
    what a core is asked for, whatever else shares the machine."""
    parent, cpu = {}, {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        pid = int(stat.parent.name)
        parent[pid], cpu[pid] = int(fields[1]), (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    mine, frontier = set(), {os.getpid()}
    while frontier:
        frontier = {p for p, pp in parent.items() if pp in frontier} - mine
        mine |= frontier
    return sum(cpu[p] for p in mine)


def loader_throughput(uri: str, storage_options: dict, batch_size: int, batches: int, out: Path) -> dict:
    """The trainer's DataLoader for a `dad` run with stored logits, one worker process: open, first batch,
    then, after the first batch, decoded images (clean + Q(x')) per second of wall time and per CPU second of
    the worker (the per-core figure: the machine is shared, so wall time also counts other work's time)."""
    from services.trainer.config import TrainConfig
    from services.trainer.data import build_datasets, train_loader

    cfg = TrainConfig(source=uri, samples=uri, objective="dad", teacher_logits="stored", preset="tiny", out=str(out),
                      batch_size=batch_size, loader_workers=1, val_fraction=0.0, storage_options=storage_options)
    t0 = time.perf_counter()
    data = build_datasets(cfg)
    out = {"dataset_open_s": round(time.perf_counter() - t0, 2)}
    loader = train_loader(cfg, data.train, 0, 1)
    t0 = time.perf_counter()
    it = iter(loader)
    next(it)
    out["first_batch_s"] = round(time.perf_counter() - t0, 2)
    images, n, t0, cpu0 = 0, 0, time.perf_counter(), descendants_cpu_s()
    for batch in it:
        images += len(batch.images) + int(batch.has_adv.sum())
        n += 1
        if n >= batches:
            break
    dt, cpu = time.perf_counter() - t0, descendants_cpu_s() - cpu0  # worker always busy (prefetch): spans these batches
    out.update(steady_batches=n, steady_images=images, images_per_s_wall=round(images / dt, 1),
               images_per_worker_cpu_s=round(images / cpu, 1) if cpu > 0 else None)
    del it, loader
    # where the time goes, in this process on the same examples (CPU time, so S3 adds moto's server thread):
    # a whole example (no worker, no IPC), and the row reads alone (Parquet row to Python, 1,000 logits a
    # row, no decode)
    k = min(len(data.train), batches * batch_size)
    t0 = time.process_time()
    images = sum(1 + int(data.train[i].get("has_adv", False)) for i in range(k))
    out["in_process_images_per_cpu_s"] = round(images / (time.process_time() - t0), 1)
    rows, t0 = data.train.rows, time.process_time()
    for c, a in data.train.pairs[:k]:
        rows.record(int(c)), a >= 0 and rows.record(int(a))
    out["row_reads_per_cpu_s_no_decode"] = round(images / (time.process_time() - t0), 1)
    return out


def shard_index_reads(uri: str, options: dict, threads: int = 8) -> dict:
    """Seconds to read every shard's index columns (what the trainer's dataset open reads) one shard after
    another, as the reader does, and with `threads` at once: how much of the open is waiting on requests."""
    from concurrent.futures import ThreadPoolExecutor

    import fsspec
    import pyarrow.parquet as pq

    from services.sample_store import load_manifest
    from services.sample_store.reader import _INDEX_COLUMNS

    fs, root = fsspec.filesystem("s3", **options), uri.split("://", 1)[1]
    paths = [f"{root}/{s.path}" for s in load_manifest(uri, options).shards]

    def read(path: str) -> int:
        with fs.open(path, "rb") as f:
            return pq.ParquetFile(f).read(columns=_INDEX_COLUMNS).num_rows

    out = {}
    for name, workers in (("index_read_sequential_s", 1), (f"index_read_{threads}_threads_s", threads)):
        t0 = time.perf_counter()
        with ThreadPoolExecutor(workers) as pool:
            sum(pool.map(read, paths))
        out[name] = round(time.perf_counter() - t0, 2)
    return out


def s3_server():
    """The tests' moto server (one definition of how to start it) as (bucket URL, storage options, stop)."""
    import logging

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    sys.path.insert(0, str(ROOT / "tests"))
    from tests.conftest import S3_BUCKET
    from tests.conftest import s3_server as fixture

    gen = fixture.__wrapped__()
    _, options = next(gen)
    return f"s3://{S3_BUCKET}", options, gen.close


def upload(local: Path, url: str, options: dict) -> str:
    import fsspec

    fsspec.filesystem("s3", **options).put(str(local), url, recursive=True)
    return url


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--photos", default=None, help="image folder for realistic pixels (default: smooth synthetic)")
    p.add_argument("--items", type=int, default=1536, help="items in the 224-px set (x2 rows)")
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--batches", type=int, default=10, help="steady batches timed after the first")
    p.add_argument("--pool", type=int, default=512, help="distinct images cycled through the set")
    p.add_argument("--s3-images", type=int, nargs="*", default=[10_000, 50_000],
                   help="tiny-image sizes for listing + planning and dataset open on the S3 server")
    p.add_argument("--no-s3", action="store_true")
    p.add_argument("--no-what-if", action="store_true", help="skip the loader over a JPEG-row copy of the set")
    p.add_argument("--json", default=None, metavar="PATH")
    args = p.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="dad-read-"))
    os.environ["DAD_CACHE_DIR"] = str(workdir / "cache")
    result: dict = {"machine": f"cpu ({os.cpu_count()} cores), load average {os.getloadavg()[0]:.1f} at start",
                    "pixels": f"PACS photos from {args.photos}" if args.photos else "smooth synthetic",
                    "size": args.size, "items": args.items, "batch_size": args.batch_size}
    stop = None
    try:
        pool = photo_pool(Path(args.photos) if args.photos else None, args.pool, args.size)
        result["decode_per_core"] = decode_per_core(pool[:256])
        print(json.dumps(result["decode_per_core"]), flush=True)
        t0 = time.perf_counter()
        set_root = fabricate(workdir / "store", args.items, CLASSES, shard_items=512, images=pool, accept_rate=1.0)
        result["fabricate_s"] = round(time.perf_counter() - t0, 1)
        result["store_MB"] = round(sum(f.stat().st_size for f in (set_root / "shards").glob("*")) / 1e6, 1)
        result["local"] = loader_throughput(str(set_root), {}, args.batch_size, args.batches, workdir / "run")
        print(json.dumps(result["local"]), flush=True)
        if not args.no_what_if:  # the same writer and loader with JPEG q90 image bytes (PIL opens either)
            with mock.patch("services.sample_store.rows.encode_png", lambda px, *_: encode_jpeg(px, 90)):
                jpeg_root = fabricate(workdir / "store-jpeg", args.items, CLASSES, shard_items=512, images=pool,
                                      accept_rate=1.0)
            result["what_if_jpeg_q90_rows"] = loader_throughput(str(jpeg_root), {}, args.batch_size, args.batches,
                                                                 workdir / "run")
            result["what_if_jpeg_q90_rows"]["store_MB"] = round(
                sum(f.stat().st_size for f in (jpeg_root / "shards").glob("*")) / 1e6, 1)
            shutil.rmtree(workdir / "store-jpeg", ignore_errors=True)
            print(json.dumps(result["what_if_jpeg_q90_rows"]), flush=True)
        if not args.no_s3:
            bucket, options, stop = s3_server()
            uri = upload(set_root, f"{bucket}/read/scale", options)
            result["s3"] = loader_throughput(uri, options, args.batch_size, args.batches, workdir / "run")
            print(json.dumps(result["s3"]), flush=True)
            shutil.rmtree(workdir / "store", ignore_errors=True)
            result["s3_scale"] = []
            for n in args.s3_images:
                r = {"images": n, **listing_and_planning(workdir, n, 1000, (f"{bucket}/list", options))}
                tiny = fabricate(workdir / f"tiny-{n}", n, CLASSES, shard_items=1000)
                uri = upload(tiny, f"{bucket}/open-{n}/scale", options)
                r.update(trainer_open(uri, options))
                r.update(shard_index_reads(uri, options))
                shutil.rmtree(workdir / f"tiny-{n}", ignore_errors=True)
                result["s3_scale"].append(r)
                print(json.dumps(r), flush=True)
        gpu = json.loads(GPU_RESULTS.read_text())["student_images_per_s"] if GPU_RESULTS.exists() else {}
        per_core = result["local"]["images_per_worker_cpu_s"]
        jpeg = result.get("what_if_jpeg_q90_rows", {}).get("images_per_worker_cpu_s")
        result["cores_per_gpu"] = {f"{what}, {rows}": round(gpu[key] / rate, 1)
                                   for what, key in (("dad stored logits (resnet50 bf16, H200)", "stored_full"),
                                                     ("ce (resnet50 bf16, H200)", "ce")) if key in gpu
                                   for rows, rate in (("png rows", per_core), ("jpeg q90 rows", jpeg)) if rate}
        print(json.dumps(result["cores_per_gpu"]), flush=True)
    finally:
        if stop is not None:
            stop()
        shutil.rmtree(workdir, ignore_errors=True)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
