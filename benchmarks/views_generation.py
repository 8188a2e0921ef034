"""Cost of stored views in the generator: seconds and bytes per sample for K = 0, 4, 8 views (`--views K`).

The same models (built once, not timed), the same batches and threads; the K cases take turns batch by batch,
so load from other processes on a shared machine slows them all alike and the ratios stay meaningful:

    per batch:  generate_samples (attack -> Q(x'), teacher on x and Q(x'), + K rendered views per image and the
                teacher on each) -> build_rows (PNG) -> Parquet (zstd, as the writer stores it)

    python benchmarks/views_generation.py                            # tiny preset, CPU, synthetic images
    python benchmarks/views_generation.py --source DIR --limit 256   # real images (ImageFolder / Parquet)
    python benchmarks/views_generation.py --preset paper --set teacher.pretrained=null --batch-size 64  # GPU
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import numpy as np  # noqa: E402
import torch  # noqa: E402

from benchmarks.common import add_output_args, machine, write_json  # noqa: E402
from dad_core import create_discretizer, create_teacher, get_preset, parse_overrides  # noqa: E402
from schemas import sample_store as ss  # noqa: E402
from services.generator.samples import DecodedBatch, batch_seed, generate_samples  # noqa: E402
from services.generator.views import ViewJob, views_info  # noqa: E402
from services.sample_store.rows import build_rows  # noqa: E402
from services.sample_store.writer import parquet_bytes  # noqa: E402


def synthetic_batches(n: int, batch_size: int, size: int, num_classes: int) -> list[DecodedBatch]:
    """Smooth random images (blocks of 8 x 8 pixels, so PNG compresses them roughly as it does photos)."""
    rng = np.random.default_rng(0)
    batches = []
    for b, start in enumerate(range(0, n, batch_size)):
        m = min(batch_size, n - start)
        cells = rng.integers(0, 256, (m, -(-size // 8), -(-size // 8), 3), dtype=np.uint8)
        images = np.repeat(np.repeat(cells, 8, 1), 8, 2)[:, :size, :size].copy()
        ids = [f"c/{start + i}.jpg" for i in range(m)]
        batches.append(DecodedBatch(0, b, ids, ids, np.arange(start, start + m) % num_classes, images))
    return batches


def source_batches(uri: str, limit: int, batch_size: int, size: int) -> tuple[list[DecodedBatch], list[str]]:
    from services.source import ReadSpec, list_source, read_items

    listing = list_source(uri)
    items = listing.items[:limit]
    decoded = read_items(ReadSpec.for_listing(listing, size), items)
    keep = [i for i, d in enumerate(decoded) if d.error is None]
    batches = []
    for b, start in enumerate(range(0, len(keep), batch_size)):
        idx = keep[start:start + batch_size]
        ids = [items[i].source_id for i in idx]
        batches.append(DecodedBatch(0, b, ids, ids, np.array([items[i].label for i in idx], np.int64),
                                    np.stack([decoded[i].pixels for i in idx])))
    return batches, listing.class_names


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--views", default="0,4,8", help="view counts to compare (default: %(default)s)")
    p.add_argument("--source", default=None, help="images to use (default: synthetic)")
    p.add_argument("--limit", type=int, default=64, help="images (default: %(default)s)")
    p.add_argument("--num-classes", type=int, default=10, help="classes of synthetic images (default: %(default)s)")
    p.add_argument("--preset", default="tiny")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="preset override (repeatable)")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--top-k", type=int, default=None, help="view soft labels kept (default: the generator's rule)")
    p.add_argument("--adversarial-views", action="store_true", help="also views of Q(x')")
    p.add_argument("--repeats", type=int, default=3, help="passes over the images, the first one untimed "
                                                          "(default: %(default)s)")
    add_output_args(p)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    counts = [int(k) for k in args.views.split(",")]
    preset = get_preset(args.preset, overrides=parse_overrides(args.set))
    device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.source:
        batches, class_names = source_batches(args.source, args.limit, args.batch_size, preset.image_size)
    else:
        class_names = [f"class {i}" for i in range(args.num_classes)]
        batches = synthetic_batches(args.limit, args.batch_size, preset.image_size, args.num_classes)
    teacher = create_teacher(preset.teacher, class_names, device=device)
    discretizer = create_discretizer(preset.discretizer, device=device)
    jobs = {k: (ViewJob(views_info(k, preset.image_size, len(class_names), None, args.top_k, 0.08,
                                   args.adversarial_views), "bench", 0, preset.image_size) if k else None)
            for k in counts}
    images = sum(len(b) for b in batches)
    seconds = {k: [] for k in counts}
    sizes: dict[int, dict[str, float]] = {}
    turn = 0
    for repeat in range(args.repeats):
        for batch in batches:
            turn += 1
            for k in counts[turn % len(counts):] + counts[:turn % len(counts)]:  # take turns, rotating who goes first
                if device == "cuda":
                    torch.cuda.synchronize()
                t0 = time.perf_counter()
                sample, _ = generate_samples(teacher, discretizer, batch, preset.attack, batch_seed(0, 0, batch.batch),
                                             device, store_discretized=False, views=jobs[k])
                table = build_rows("bench", [sample], class_names=class_names)
                data = parquet_bytes(table)
                if device == "cuda":
                    torch.cuda.synchronize()
                if repeat > 0 or args.repeats == 1:
                    seconds[k].append((time.perf_counter() - t0) / len(batch))
                if repeat == 0:
                    s = sizes.setdefault(k, {"parquet_bytes": 0, "view_label_bytes": 0})
                    s["parquet_bytes"] += len(data)
                    s["view_label_bytes"] += sum(table.column(c).nbytes for c in (ss.COL_VIEW_LOGITS, ss.COL_VIEW_CLASSES,
                                                                                  ss.COL_VIEWS))
    per_sample = {k: statistics.median(v) for k, v in seconds.items()}
    base = per_sample[counts[0]]
    print(f"{images} images, preset {preset.name} ({preset.image_size} px, teacher {preset.teacher.model}), "
          f"{len(class_names)} classes, batch {args.batch_size}, {device} ({torch.get_num_threads()} threads)")
    print(f"{'views':>5} {'ms/sample':>10} {'vs K=' + str(counts[0]):>8} {'bytes/sample':>13} {'labels+boxes B':>15} "
          f"{'top-k':>6}")
    report = {"preset": preset.name, "image_size": preset.image_size, "classes": len(class_names),
              "images": images, "batch_size": args.batch_size, "device": machine(device),
              "threads": torch.get_num_threads(), "synthetic": args.source is None, "cases": {}}
    for k in counts:
        top_k = jobs[k].info.top_k if jobs[k] else None
        row = {"ms_per_sample": per_sample[k] * 1e3, "ratio": per_sample[k] / base,
               "bytes_per_sample": sizes[k]["parquet_bytes"] / images,
               "view_label_bytes_per_sample": sizes[k]["view_label_bytes"] / images, "top_k": top_k}
        report["cases"][str(k)] = row
        print(f"{k:>5} {row['ms_per_sample']:10.2f} {row['ratio']:7.2f}x {row['bytes_per_sample']:13.0f} "
              f"{row['view_label_bytes_per_sample']:15.0f} {str(top_k or 'full'):>6}")
    print("(bytes: the Parquet shard as the writer stores it, clean + Q(x') rows; labels+boxes: uncompressed view "
          "columns)")
    write_json(args.json, report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
