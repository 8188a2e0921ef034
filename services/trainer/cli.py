"""`python -m services.trainer`: train a timm student on clean images + DAD samples with Ray Train (DDP).

  python -m services.trainer --source data/train --samples out/samples/<set>/manifest.json \\
      --preset tiny --student test_resnet --objective dad --out out/runs/dad --epochs 2

Writes to --out (any fsspec URL): checkpoints every epoch, metrics.jsonl, and model.pth, a plain
state_dict for `timm.create_model(STUDENT, num_classes=K, checkpoint_path="model.pth")`. Re-running the
same command resumes from the last checkpoint (raise --epochs to train longer).

Data: with --samples, each step takes --batch-size clean images from the sample set's clean rows (the
source images exactly as the teacher judged them, at the set's image size) plus each one's accepted Q(x')
(Sec. 3.2: original and augmented samples together); an example whose Q(x') the teacher rejected trains
on CE + KD only. --source is listed to check that the set's classes are the source's. Without --samples
(ce, dat, or kd/dist with online logits) images are read from --source at the preset's image size.

Teacher logits and augmentation:
  stored (default)  the teacher's logits are read from the sample set; no teacher is loaded. They belong to
                    the exact stored pixels, so NO view-changing augmentation is valid with them: not
                    --randaugment, --mixup or --hflip (even a flip changes CLIP's logits). Objectives that
                    use no teacher (ce, dat) may use any augmentation.
  online            the teacher runs on the augmented views the student sees (needs the teacher's weights
                    and its compute): use it with --randaugment / --mixup / --hflip.
  stored views      a set made with the generator's --views K stores K random-resized-crop + flip views
                    per image with the teacher's logits on each: with stored logits the run uses them by
                    default (epoch e shows view e mod K), augmentation with no teacher; --views 0 trains on
                    the unaugmented images of the same set, --views N < K on the first N views.

Objectives: {objectives}

Every flag is a field of the job's config model (schemas.jobs.TrainJobConfig), the same one `POST /runs`
validates; `--config FILE` reads a whole config (e.g. the control plane's runs/<id>/run.json).

Under `ray job submit` the job joins the cluster in RAY_ADDRESS; see the README for the auth token and
the python that `ray start` must see. Exit status: 0 done, 1 training failed (re-run to resume), 2 bad
input (nothing was trained).
"""
from __future__ import annotations

import argparse
import sys

from services.jobs.cli import Flag, job_config_from_args, job_parser
from services.trainer.config import TrainConfig

GROUPS = {
    "data": ["source", "samples", "out", "val", "val_fraction", "class_map", "source_format", "storage_options",
             "verify_shards"],
    "model and objective": ["preset", "overrides", "student", "student_init", "objective", "teacher_logits", "adversarial_rows"],
    "recipe": ["epochs", "batch_size", "optimizer", "lr", "momentum", "weight_decay", "warmup_epochs", "min_lr",
               "label_smoothing", "randaugment", "mixup", "hflip", "random_resized_crop", "views", "bf16",
               "channels_last", "seed"],
    "resources": ["workers", "gpus_per_worker", "cpus_per_worker", "loader_workers", "shuffle_window", "max_failures",
                  "ray_address"],
    "reporting": ["log_every", "max_steps_per_epoch", "progress_bar"],
}
FLAGS = {"samples": Flag(metavar="MANIFEST_URI"), "val": Flag(metavar="URI"), "mixup": Flag(metavar="ALPHA"),
         "randaugment": Flag(metavar="TIMM_STRING"), "random_resized_crop": Flag(metavar="MIN_AREA"),
         "progress_bar": Flag("--no-progress", help="no progress bar (a bar shows only on a terminal; a line per epoch "
                                                     "is printed either way)"),
         "verify_shards": Flag("--skip-verify", negative=True,
                               help="do not check the sample set's shards against the sha256 sums of its manifest "
                                    "before training (reads every shard once; skip only for a set you know is intact)")}


def _objective_help() -> str:
    from dad_core.objectives import describe_objectives

    return "(dad_core.objectives)\n" + describe_objectives()


def build_parser() -> argparse.ArgumentParser:
    from dad_core.objectives import list_objectives

    flags = {**FLAGS, "objective": Flag(choices=tuple(list_objectives()))}
    return job_parser(TrainConfig, prog="python -m services.trainer", groups=GROUPS, flags=flags,
                      description=__doc__.replace("{objectives}", _objective_help()))


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The run's config from --config and the flags; relative paths are made absolute here."""
    from services.trainer.launcher import absolute_paths

    return absolute_paths(job_config_from_args(TrainConfig, args, FLAGS))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        cfg = config_from_args(args)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if cfg.progress_bar and not sys.stdout.isatty():  # a bar only on a terminal; a line per epoch either way
        cfg = cfg.model_copy(update={"progress_bar": False})
    from services.trainer.launcher import main_run  # Ray and torch load only once the arguments are good

    return main_run(cfg)
