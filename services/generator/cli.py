"""Command line of the generator: `python -m services.generator --source URI --out URI --preset NAME`, or
`--config run.json`. Its flags are generated from the job's config model (schemas.jobs.GenerateJobConfig)."""
from __future__ import annotations

import argparse
import logging
import sys
from typing import TYPE_CHECKING, Sequence

from services.generator.config import GeneratorConfig
from services.jobs.cli import Flag, job_config_from_args, job_parser
from services.jobs.ray_cluster import connect_ray

if TYPE_CHECKING:
    from schemas.perturbation import PerturbationTally

EPILOG = """\
examples:
  # local disk, the tiny test models, on a local Ray started for this run
  python -m services.generator --source /data/pacs/photo --out out/samples --preset tiny

  # the paper's setting, sources and store on S3 (or any S3-compatible server)
  python -m services.generator --source s3://bucket/imagenet/train --out s3://bucket/dad-samples \\
      --preset paper --set discretizer.checkpoint=/ckpt/vq-f8.ckpt \\
      --storage-option endpoint_url=http://minio:9000

  # the config the control plane wrote for a run (flags given as well override it)
  python -m services.generator --config out/store/runs/<run id>/run.json

  # on a running cluster (`ray job submit`; see the README for RAY_AUTH_MODE)
  ray job submit --address http://127.0.0.1:8265 -- python -m services.generator --source ... --out ...

Re-running the same command resumes: committed shards are kept, the rest is generated, and the
manifest (<out>/<set>/manifest.json) is written last. Live progress: <out>/<set>/_status.json.
Exit status: 0 done, 1 generation failed (re-run to resume), 2 bad input: arguments, preset, source, or an
output that cannot be written (nothing was generated; a retry would fail the same way).
"""

GROUPS = {
    "data": ["source", "out", "name", "class_map", "source_format", "limit", "storage_options"],
    "models and attack": ["preset", "overrides", "requantize_every"],
    "augmented views (stored soft labels)": ["views", "view_image_size", "view_top_k", "view_min_scale",
                                             "adversarial_views"],
    "execution": ["shard_size", "batch_size", "num_actors", "gpus_per_actor", "cpus_per_actor", "torch_threads",
                  "read_cpus", "write_cpus", "prefetch_shards", "max_attempts", "max_pixels", "large_pixels", "ray_address",
                  "status_interval_s", "progress_bar"],
}
FLAGS = {"progress_bar": Flag("--no-progress", help="no progress bar (the status file is still written)")}


def build_parser() -> argparse.ArgumentParser:
    p = job_parser(GeneratorConfig, prog="python -m services.generator", groups=GROUPS, flags=FLAGS, epilog=EPILOG,
                   description="Generate a DAD sample set (clean images + discretized adversarial images Q(x'), "
                               "each with the teacher's logits) once per (teacher, discretizer, dataset), into a "
                               "sample store that every student run reuses.")
    run = p.add_argument_group("this process")
    run.add_argument("--num-cpus", type=int, help="CPUs of the local Ray started for this run (default: all)")
    run.add_argument("--log-level", default="INFO", help="logging level (default: %(default)s)")
    return p


def config_from_args(args: argparse.Namespace) -> GeneratorConfig:
    config = job_config_from_args(GeneratorConfig, args, FLAGS)
    if config.progress_bar and not sys.stderr.isatty():
        config = config.model_copy(update={"progress_bar": False})
    return config


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = config_from_args(args)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
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
        connect_ray(config.ray_address, args.num_cpus)
        result = run_generation(config, job=job)
    except failures as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except OSError as e:  # the driver's own writes (plan, manifest): e.g. a full disk under the store
        from services.storage import describe_storage_error

        print(f"error: {describe_storage_error(config.out, e)} (store {job.store.uri})", file=sys.stderr)
        return 1
    stats = result.manifest.statistics
    print(f"sample set: {result.manifest_uri}\n"
          f"  {stats.seen} images seen, {stats.clean} decoded ({stats.converted.total} converted, {stats.large.total} large), "
          f"{stats.errored.total} errored {stats.errored.reasons or ''}\n"
          f"  adversarial: {stats.accepted} accepted, {stats.rejected.total} rejected "
          f"(acceptance {stats.acceptance_rate:.1%}); {len(result.manifest.shards)} shards, "
          f"{result.resumed_shards} resumed")
    print(teacher_line(stats.teacher_clean_correct, stats.clean, len(result.manifest.config.class_names)))
    for line in perturbation_lines(stats.perturbation):
        print(line)
    from services.generator.tracking import track_generation

    tracker = track_generation(config, result)
    if tracker.active:
        print(f"mlflow: run {tracker.run_id} in {tracker.uri} (experiment {tracker.experiment_id})")
    return 0


def perturbation_lines(tally: "PerturbationTally | None") -> list[str]:
    """What the attack changed (means over every Q(x'); README "Reading the diagnostics"), then a plain warning
    when it is immaterial."""
    from schemas.perturbation import DIAGNOSTIC_NAMES, immaterial_attack

    if tally is None:
        return []
    m = tally.mean

    def share(name: str) -> str:
        return "n/a" if m(name) is None else f"{m(name):.1%}"

    lines = [f"  attack: |delta| L2 {m('delta_l2'):.3g} (L-inf {m('delta_linf'):.3g}); Q(x') vs Q(x): L2 "
             f"{m('l2_vs_qx'):.3g}, {share('same_vs_qx')} values identical, {share('codes_vs_qx')} codes changed; "
             f"vs Q(Q(x)): L2 {m('l2_vs_qqx'):.3g}, {share('same_vs_qqx')} identical, {share('codes_vs_qqx')} codes "
             f"changed; teacher KL {m('kl_vs_qx'):.3g}, confidence drop {m('conf_drop_vs_qx'):+.3f} (means)"]
    warning = immaterial_attack({name: m(name) for name in DIAGNOSTIC_NAMES})
    return lines + ([warning] if warning else [])


def teacher_line(correct: int, clean: int, num_classes: int) -> str:
    """How often the teacher is right on the clean images; near chance, why few Q(x') are accepted."""
    line = f"  teacher right on {correct} of {clean} clean images ({correct / max(1, clean):.1%})"
    if clean and correct / clean < 2 / max(1, num_classes):
        line += (f" - near chance for {num_classes} classes: a teacher that does not know these classes rejects "
                 "almost every Q(x'). The tiny preset's teacher is random-init (a test model); pass real weights "
                 "(README \"Real weights\") or a trained checkpoint (--set teacher.pretrained=...)")
    return line
