"""Command line of the generator: `python -m services.generator --source URI --out URI --preset NAME`."""
from __future__ import annotations

import argparse
import logging
import os
import sys
from typing import Sequence

from services.cli_types import key_value
from services.generator.config import GeneratorConfig

EPILOG = """\
examples:
  # local disk, the tiny test models, on a local Ray started for this run
  python -m services.generator --source /data/pacs/photo --out out/samples --preset tiny

  # the paper's setting, sources and store on S3 (or any S3-compatible server)
  python -m services.generator --source s3://bucket/imagenet/train --out s3://bucket/dad-samples \\
      --preset paper --set discretizer.checkpoint=/ckpt/vq-f8.ckpt \\
      --storage-option endpoint_url=http://minio:9000

  # on a running cluster (`ray start --head`; see the README for RAY_AUTH_MODE)
  ray job submit --address http://127.0.0.1:8265 -- python -m services.generator --source ... --out ...

Re-running the same command resumes: committed shards are kept, the rest is generated, and the
manifest (<out>/<set>/manifest.json) is written last. Live progress: <out>/<set>/_status.json.
Exit status: 0 done, 1 generation failed (re-run to resume), 2 bad input: arguments, preset, source, or an
output that cannot be written (nothing was generated; a retry would fail the same way).
"""



def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m services.generator",
        description="Generate a DAD sample set (clean images + discretized adversarial images Q(x'), each with "
                    "the teacher's logits) once per (teacher, discretizer, dataset), into a sample store that "
                    "every student run reuses.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    io = p.add_argument_group("data")
    io.add_argument("--source", required=True,
                    help="ImageFolder tree (<class>/<image>) or Parquet image dataset; plain path, file:// or s3:// URL")
    io.add_argument("--out", default="out/samples",
                    help="sample store root (any fsspec URL; default: %(default)s); the set goes to <out>/<name>/")
    io.add_argument("--name", help="set folder name (default: <preset>-<source folder>-<hash of config and source>)")
    io.add_argument("--class-map", help="class names: JSON {id: name} or [names], CSV id,name, or txt "
                                        "(default: ImageNet wnids -> CLIP class names, else folder names)")
    io.add_argument("--source-format", choices=("auto", "imagefolder", "parquet"), default="auto",
                    help="how to read --source (default: %(default)s)")
    io.add_argument("--limit", type=int, help="use only the first N images of the sorted listing")
    io.add_argument("--storage-option", action="append", default=[], type=key_value, metavar="KEY=VALUE",
                    help="fsspec option for remote URLs, e.g. endpoint_url=http://127.0.0.1:9000 (repeatable)")
    model = p.add_argument_group("models and attack")
    model.add_argument("--preset", default="tiny", help="dad_core preset: tiny (test models, CPU) or paper "
                                                        "(CLIP ViT-L/14 + VQGAN f8, 224 px) (default: %(default)s)")
    model.add_argument("--set", action="append", default=[], dest="overrides", metavar="KEY=VALUE",
                       help="override a preset field, e.g. attack.steps=2 or teacher.pretrained=/ckpt.pt (repeatable)")
    run = p.add_argument_group("execution")
    run.add_argument("--shard-size", type=int, default=256, help="images per shard, the unit of commit and "
                                                                 "resume (default: %(default)s)")
    run.add_argument("--batch-size", type=int, default=32, help="images per model batch (default: %(default)s)")
    run.add_argument("--num-actors", type=int, help="generator actors, each holding the models once "
                                                    "(default: one per GPU, or 1 without GPUs)")
    run.add_argument("--gpus-per-actor", type=float, help="GPUs each actor reserves, fractions allowed "
                                                          "(default: 1 when the cluster has GPUs, else 0: CPU)")
    run.add_argument("--cpus-per-actor", type=float, default=1.0,
                     help="CPUs each actor reserves; leave some for read/write tasks (default: %(default)s)")
    run.add_argument("--torch-threads", type=int, help="intra-op threads per actor (default: CPUs per actor)")
    run.add_argument("--read-cpus", type=float, default=0.5, help="CPUs per read/decode task (default: %(default)s)")
    run.add_argument("--write-cpus", type=float, default=0.5, help="CPUs per write task (default: %(default)s)")
    run.add_argument("--prefetch-shards", type=int, help="shards read ahead of the actors (default: grows with the "
                                                         "CPUs the actors leave free, at least 2)")
    run.add_argument("--ray-address", default=None,
                     help="Ray cluster to join (default: $RAY_ADDRESS, as set by `ray job submit`; "
                          "otherwise start a local Ray for this run)")
    run.add_argument("--num-cpus", type=int, help="CPUs of the local Ray started for this run (default: all)")
    run.add_argument("--no-progress", action="store_true", help="no progress bar (the status file is still written)")
    run.add_argument("--log-level", default="INFO", help="logging level (default: %(default)s)")
    return p


def config_from_args(args: argparse.Namespace) -> GeneratorConfig:
    return GeneratorConfig(
        source=args.source, out=args.out, preset=args.preset, overrides=tuple(args.overrides), name=args.name,
        class_map=args.class_map, source_format=args.source_format, limit=args.limit, shard_size=args.shard_size,
        batch_size=args.batch_size, num_actors=args.num_actors, gpus_per_actor=args.gpus_per_actor,
        cpus_per_actor=args.cpus_per_actor, torch_threads=args.torch_threads, read_cpus=args.read_cpus,
        write_cpus=args.write_cpus, prefetch_shards=args.prefetch_shards, storage_options=dict(args.storage_option),
        progress_bar=not args.no_progress and sys.stderr.isatty())


def connect_ray(address: str | None = None, num_cpus: int | None = None) -> None:
    """Join `address` (or $RAY_ADDRESS), else start a local Ray that lives as long as this process."""
    import ray

    address = address or os.environ.get("RAY_ADDRESS")
    if address and address != "local":
        ray.init(address=address, logging_level=logging.WARNING)
    else:
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, logging_level=logging.WARNING)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = config_from_args(args)
    except ValueError as e:
        parser.error(str(e))
    from services.generator.pipeline import GenerationError, prepare_job, run_generation
    from services.source.class_map import ClassMapError
    from services.source.listing import SourceError
    from services.storage import StorageError

    failures = (GenerationError, SourceError, StorageError, ClassMapError, ValueError)
    try:
        job = prepare_job(config)  # output, source and preset errors surface before Ray starts
    except failures as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    try:
        connect_ray(args.ray_address, args.num_cpus)
        result = run_generation(config, job=job)
    except failures as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    stats = result.manifest.statistics
    print(f"sample set: {result.manifest_uri}\n"
          f"  {stats.seen} images seen, {stats.clean} decoded ({stats.converted.total} converted, {stats.large.total} large), "
          f"{stats.errored.total} errored {stats.errored.reasons or ''}\n"
          f"  adversarial: {stats.accepted} accepted, {stats.rejected.total} rejected "
          f"(acceptance {stats.acceptance_rate:.1%}); {len(result.manifest.shards)} shards, "
          f"{result.resumed_shards} resumed")
    return 0
