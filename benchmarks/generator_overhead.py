"""Generator throughput and the service's overhead (Ray + I/O) over a bare in-process loop.

Both sides use the same models (built once, not timed), the same images, batch size and torch threads:

    bare:     read + decode + resize -> generate_dad_batch + judge -> PNG rows      (one process, no storage)
    service:  run_generation on a local Ray, from actors ready to manifest written (read tasks, actor
              pool, write tasks, Parquet + commit markers on local disk)

Overhead = service time / bare time - 1 (target: <= 15% on the `tiny` preset on CPU). Ray start-up and
actor start-up (model building in the actor) are reported separately: they are paid once per job.

    python benchmarks/generator_overhead.py --source /work/shared/data/pacs/photo --limit 512
    # only the bare loop, e.g. for the perturbation diagnostics' share of generation time:
    python benchmarks/generator_overhead.py --source /work/shared/data/pacs/photo --limit 256 --bare-only --json ''
    # GPU, paper-size models with random weights (speed only):
    python benchmarks/generator_overhead.py --source DIR --preset paper --set teacher.pretrained=null --batch-size 64
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import numpy as np  # noqa: E402
import torch  # noqa: E402

from benchmarks.common import add_output_args, machine, write_json  # noqa: E402
from dad_core import create_discretizer, create_teacher, get_preset, parse_overrides  # noqa: E402
from dad_core.presets import parse_override  # noqa: E402
from services.generator.config import GeneratorConfig  # noqa: E402
from services.generator.samples import DecodedBatch, batch_seed, generate_samples  # noqa: E402
from services.sample_store.rows import build_rows  # noqa: E402
from services.source import ReadSpec, list_source, read_items  # noqa: E402


def bare_loop(args, preset, listing, device: str) -> dict:
    """The reference: the same per-image work, sequentially, in this process."""
    teacher = create_teacher(preset.teacher, listing.class_names, device=device)
    discretizer = create_discretizer(preset.discretizer, device=device)
    spec = ReadSpec.for_listing(listing, preset.image_size)
    stages = {"read": 0.0, "generate": 0.0, "judge": 0.0, "diagnose": 0.0, "encode": 0.0}
    items, n_out = listing.items, 0
    t0 = time.perf_counter()
    for start in range(0, len(items), args.batch_size):
        chunk = items[start:start + args.batch_size]
        t = time.perf_counter()
        decoded = read_items(spec, chunk)
        keep = [i for i, d in enumerate(decoded) if d.error is None]
        batch = DecodedBatch(0, start, [chunk[i].source_id for i in keep], [chunk[i].source_id for i in keep],
                             np.array([chunk[i].label for i in keep], dtype=np.int64),
                             np.stack([decoded[i].pixels for i in keep]))
        stages["read"] += time.perf_counter() - t
        sample, stats = generate_samples(teacher, discretizer, batch, preset.attack, batch_seed(0, 0, start), device,
                                         requantize_every=args.requantize_every)
        for k, v in stats.stage_s.items():
            stages[k] += v
        t = time.perf_counter()
        n_out += build_rows("bench", [sample]).num_rows
        stages["encode"] += time.perf_counter() - t
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    total = time.perf_counter() - t0
    return {"seconds": total, "images": len(items), "rows": n_out, "images_per_s": len(items) / total, "stage_s": stages}


def service_run(args, listing_size: int, threads: int) -> dict:
    import ray

    from services.generator.pipeline import run_generation

    t0 = time.perf_counter()
    ray.init(address="local", num_cpus=args.num_cpus, include_dashboard=False, logging_level=logging.WARNING)
    ray_start = time.perf_counter() - t0
    try:
        with tempfile.TemporaryDirectory() as out:
            config = GeneratorConfig(source=args.source, out=out, preset=args.preset, overrides=dict(map(parse_override, args.set)),
                                     limit=args.limit, shard_size=args.shard_size, batch_size=args.batch_size,
                                     num_actors=args.num_actors, cpus_per_actor=args.cpus_per_actor,
                                     torch_threads=threads, progress_bar=False, requantize_every=args.requantize_every)
            result = run_generation(config)
    finally:
        ray.shutdown()
    stages = dict(result.manifest.timings.stage_s)
    return {"seconds": result.run_s, "images": listing_size, "rows": result.manifest.num_rows,
            "images_per_s": listing_size / result.run_s, "ray_start_s": ray_start, "actor_startup_s": result.startup_s,
            "stage_s_summed_over_workers": stages}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--source", required=True, help="ImageFolder or Parquet source (any fsspec URL)")
    p.add_argument("--limit", type=int, default=512, help="images to use (default: %(default)s)")
    p.add_argument("--preset", default="tiny")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="preset override (repeatable)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--shard-size", type=int, default=128)
    p.add_argument("--num-actors", type=int, default=None)
    p.add_argument("--cpus-per-actor", type=float, default=1.0)
    p.add_argument("--no-bare-after", dest="bare_after", action="store_false",
                   help="run the bare loop only before the service, not also after it")
    p.add_argument("--requantize-every", type=int, default=GeneratorConfig.model_fields["requantize_every"].default,
                   help="the generator's requantize_every (default: the job's, %(default)s)")
    p.add_argument("--bare-only", action="store_true", help="only the bare loop (e.g. for the diagnostics' share)")
    p.add_argument("--num-cpus", type=int, default=None, help="CPUs of the local Ray (default: all)")
    add_output_args(p, json_default="benchmarks/results/generator_overhead.json",
                    threads_help="torch threads, both sides (default: the actor's CPUs, as the service uses; 1 on GPU)")
    args = p.parse_args()
    logging.basicConfig(level=logging.WARNING)

    preset = get_preset(args.preset, overrides=parse_overrides(args.set))
    listing = list_source(args.source)
    listing.items = listing.items[: args.limit]
    device = "cuda" if torch.cuda.is_available() else "cpu"
    threads = args.threads or (1 if device == "cuda" else max(1, round(args.cpus_per_actor)))
    torch.set_num_threads(threads)
    # Bare loop before and after the service: on a shared machine the spread shows how noisy the numbers are.
    bare_runs = [bare_loop(args, preset, listing, device)]
    if args.bare_only:
        return report_diagnostics(bare_runs[0], args.json)
    service = service_run(args, len(listing.items), threads)
    if args.bare_after:
        bare_runs.append(bare_loop(args, preset, listing, device))
    bare = {**bare_runs[0], "seconds": sum(b["seconds"] for b in bare_runs) / len(bare_runs),
            "runs_s": [round(b["seconds"], 3) for b in bare_runs],
            "stage_s": {k: sum(b["stage_s"][k] for b in bare_runs) / len(bare_runs) for k in bare_runs[0]["stage_s"]}}
    bare["images_per_s"] = bare["images"] / bare["seconds"]
    overhead = service["seconds"] / bare["seconds"] - 1
    report = {"preset": preset.name, "overrides": args.set, "device": machine(device),
              "images": len(listing.items), "image_size": preset.image_size, "batch_size": args.batch_size,
              "torch_threads": threads, "bare": bare, "service": service, "overhead": overhead,
              "end_to_end_overhead": (service["seconds"] + service["ray_start_s"] + service["actor_startup_s"])
              / bare["seconds"] - 1}
    print(f"{report['images']} images, preset {preset.name} ({preset.image_size} px), batch {args.batch_size}, "
          f"{threads} torch thread(s), {report['device']}")
    print(f"  bare loop : {bare['images_per_s']:8.1f} images/s  ({bare['seconds']:.2f} s, mean of runs "
          f"{', '.join(f'{s:.2f}' for s in bare['runs_s'])} s)")
    print(f"  service   : {service['images_per_s']:8.1f} images/s  ({service['seconds']:.2f} s, actors ready -> manifest)")
    print(f"  overhead  : {overhead:+.1%} (Ray + I/O; target <= +15% on tiny/CPU)")
    print(f"  one-off   : ray.init {service['ray_start_s']:.1f} s, listing + actors {service['actor_startup_s']:.1f} s "
          f"(end to end {report['end_to_end_overhead']:+.0%})")
    stage_names = ("read", "generate", "judge", "diagnose", "encode", "write")
    print("  stage seconds  " + "  ".join(stage_names))
    for name, stages in (("bare", bare["stage_s"]), ("service*", service["stage_s_summed_over_workers"])):
        print(f"  {name:<14} " + "  ".join(f"{stages.get(k, 0.0):{len(k)}.2f}" for k in stage_names))
    print("  (* summed over parallel workers)")
    print(diagnostics_line(bare["stage_s"]))
    write_json(args.json, report)
    return 0


def diagnostics_line(stages: dict[str, float]) -> str:
    """The perturbation diagnostics' share (Q(Q(x)) pass + measures; target < 5%) of the generation time."""
    gen = sum(stages.get(k, 0.0) for k in ("generate", "judge", "diagnose"))
    return (f"  diagnostics: {stages.get('diagnose', 0.0) / max(gen, 1e-9):.1%} of generation time "
            "(generate + judge + diagnose; target < 5%)")


def report_diagnostics(bare: dict, path: str | None) -> int:
    print(f"  bare loop : {bare['images_per_s']:8.1f} images/s; stage seconds "
          + ", ".join(f"{k} {v:.2f}" for k, v in bare["stage_s"].items()))
    print(diagnostics_line(bare["stage_s"]))
    write_json(path, {"bare": bare})
    return 0


if __name__ == "__main__":
    sys.exit(main())
