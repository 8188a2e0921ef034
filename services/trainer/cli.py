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

Objectives (dad_core.losses): ce, kd (Eq. 7), dist, ard, rslad, dad (Eq. 9, default), dat (Eq. 5; the
student's own Q(x'), made online), dat+dad (App. C).

Under `ray job submit` the job joins the cluster in RAY_ADDRESS; see the README for the auth token and
the python that `ray start` must see. Exit status: 0 done, 1 training failed (re-run to resume), 2 bad
input (nothing was trained).
"""
from __future__ import annotations

import argparse
import sys

from dad_core import get_preset, list_presets, parse_overrides
from dad_core.losses import list_objectives
from services.storage import absolute_uri
from services.trainer.config import OPTIMIZERS, TEACHER_LOGITS, TrainConfig


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m services.trainer", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    d = TrainConfig.__dataclass_fields__
    g = p.add_argument_group("data")
    g.add_argument("--source", required=True,
                   help="the clean training set: ImageFolder tree or Parquet images (any fsspec URL)")
    g.add_argument("--samples", default=None, metavar="MANIFEST_URI",
                   help="sample set from services.generator: its manifest.json or its folder. Required by every "
                        "objective that uses Q(x') or stored teacher logits")
    g.add_argument("--out", required=True,
                   help="run folder for checkpoints, metrics.jsonl and model.pth (local or s3://)")
    g.add_argument("--val", default=None, metavar="URI",
                   help="validation source (same classes); default: hold out --val-fraction of the source items")
    g.add_argument("--val-fraction", type=float, default=d["val_fraction"].default,
                   help="share of source items (and their Q(x')) held out for per-epoch accuracy when --val is "
                        "not given (chosen by a hash of the item id: the same items every run) (default: %(default)s)")
    g.add_argument("--class-map", default=None, help="class map file of the source, as given to the generator")
    g.add_argument("--source-format", default="auto", choices=["auto", "imagefolder", "parquet"], help="source layout")
    g.add_argument("--storage-option", action="append", default=[], metavar="KEY=VALUE",
                   help="fsspec option for remote URLs, repeatable (e.g. endpoint_url=http://127.0.0.1:9000)")

    g = p.add_argument_group("model and objective")
    g.add_argument("--preset", default="paper", choices=list_presets(),
                   help="teacher, discretizer, attack and distillation defaults (default: %(default)s)")
    g.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a preset field, repeatable (e.g. distill.temperature=2, attack.step_size=0.05)")
    g.add_argument("--student", default=None, help="timm model name (default: the preset's student)")
    g.add_argument("--objective", default="dad", choices=list_objectives(), help="training loss (default: %(default)s)")
    g.add_argument("--teacher-logits", default="stored", choices=TEACHER_LOGITS,
                   help="stored: read phi(x), phi(Q(x')) from the sample set, no teacher in memory; online: run "
                        "the teacher on the augmented views (default: %(default)s)")

    g = p.add_argument_group("recipe")
    g.add_argument("--epochs", type=int, default=d["epochs"].default, help="total epochs (default: %(default)s)")
    g.add_argument("--batch-size", type=int, default=d["batch_size"].default,
                   help="clean examples per worker per step; each brings its accepted Q(x') (default: %(default)s)")
    g.add_argument("--optimizer", default="sgd", choices=OPTIMIZERS, help="(default: %(default)s)")
    g.add_argument("--lr", type=float, default=None,
                   help="peak learning rate (default: 0.1 x global batch / 256 for SGD, "
                        "1e-3 x global batch / 512 for AdamW)")
    g.add_argument("--momentum", type=float, default=d["momentum"].default, help="SGD momentum (default: %(default)s)")
    g.add_argument("--weight-decay", type=float, default=None,
                   help="decoupled from biases and norm layers (default: 1e-4 SGD, 0.05 AdamW)")
    g.add_argument("--warmup-epochs", type=float, default=d["warmup_epochs"].default,
                   help="linear warm-up, then cosine decay per step (default: %(default)s)")
    g.add_argument("--min-lr", type=float, default=0.0, help="learning rate at the end of the cosine (default: 0)")
    g.add_argument("--label-smoothing", type=float, default=None,
                   help="on every cross-entropy term (sets distill.label_smoothing; default: the preset's, 0)")
    g.add_argument("--randaugment", default=None, metavar="TIMM_STRING",
                   help="timm RandAugment, e.g. rand-m9-mstd0.5 (needs --teacher-logits online when distilling)")
    g.add_argument("--mixup", type=float, default=0.0, metavar="ALPHA",
                   help="Mixup Beta(alpha, alpha), 0 = off (needs --teacher-logits online when distilling; "
                        "not with dat)")
    g.add_argument("--hflip", action="store_true",
                   help="random horizontal flips (needs --teacher-logits online when distilling)")
    g.add_argument("--bf16", action="store_true", help="bfloat16 autocast for student and teacher")
    g.add_argument("--channels-last", action="store_true", help="channels_last memory format (faster convnets on GPUs)")
    g.add_argument("--seed", type=int, default=0, help="(default: %(default)s)")

    g = p.add_argument_group("resources")
    g.add_argument("--workers", type=int, default=1, help="Ray Train workers, one DDP rank each (default: %(default)s)")
    g.add_argument("--gpus-per-worker", type=float, default=0.0,
                   help="0 trains on CPUs with gloo; >= 1 uses NCCL (default: %(default)s)")
    g.add_argument("--cpus-per-worker", type=float, default=1.0,
                   help="CPUs reserved per worker; fractional on small machines, e.g. 0.5 (default: %(default)s)")
    g.add_argument("--loader-workers", type=int, default=d["loader_workers"].default,
                   help="DataLoader processes per worker (default: %(default)s)")
    g.add_argument("--shuffle-window", type=int, default=d["shuffle_window"].default,
                   help="Parquet row groups shuffled together (more mixes better, costs memory) (default: %(default)s)")
    g.add_argument("--max-failures", type=int, default=0,
                   help="Ray Train restarts after a worker failure; each resumes from the last checkpoint")
    g.add_argument("--ray-address", default=None,
                   help="Ray cluster to join (default: $RAY_ADDRESS, as set by `ray job submit`; otherwise start a "
                        "local Ray for this run)")

    g = p.add_argument_group("reporting")
    g.add_argument("--log-every", type=int, default=d["log_every"].default,
                   help="steps per metrics line (default: %(default)s)")
    g.add_argument("--max-steps-per-epoch", type=int, default=None, help="cap steps per epoch (smoke tests)")
    g.add_argument("--no-progress", action="store_true",
                   help="no progress bar (it shows only on a terminal; a line per epoch is printed either way)")
    g.add_argument("--skip-verify", action="store_true",
                   help="do not check the sample set's shards against the sha256 sums of its manifest before "
                        "training (reads every shard once; skip only for a set you know is intact)")
    return p


def _pairs(items: list[str], flag: str) -> dict:
    try:
        return parse_overrides(items)
    except ValueError as e:
        raise ValueError(f"{flag}: {e}") from None


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    overrides = list(args.overrides)
    if args.label_smoothing is not None:
        overrides.append(f"distill.label_smoothing={args.label_smoothing}")
    _pairs(overrides, "--set")
    student = args.student or get_preset(args.preset, parse_overrides(overrides)).student
    return TrainConfig(
        # Relative paths are made absolute here: the workers run in Ray's own working directory.
        source=absolute_uri(args.source), out=absolute_uri(args.out), samples=absolute_uri(args.samples),
        student=student, objective=args.objective,
        teacher_logits=args.teacher_logits, preset=args.preset, overrides=tuple(overrides),
        class_map=absolute_uri(args.class_map), source_format=args.source_format, val=absolute_uri(args.val),
        val_fraction=args.val_fraction,
        epochs=args.epochs, batch_size=args.batch_size, optimizer=args.optimizer, lr=args.lr,
        momentum=args.momentum, weight_decay=args.weight_decay, warmup_epochs=args.warmup_epochs,
        min_lr=args.min_lr, randaugment=args.randaugment, mixup=args.mixup, hflip=args.hflip,
        precision="bf16" if args.bf16 else "fp32", channels_last=args.channels_last, seed=args.seed,
        workers=args.workers, gpus_per_worker=args.gpus_per_worker, cpus_per_worker=args.cpus_per_worker,
        loader_workers=args.loader_workers, shuffle_window=args.shuffle_window, max_failures=args.max_failures,
        ray_address=args.ray_address, log_every=args.log_every, progress_bar=not args.no_progress and sys.stdout.isatty(),
        max_steps_per_epoch=args.max_steps_per_epoch,
        storage_options=_pairs(args.storage_option, "--storage-option"), verify_shards=not args.skip_verify)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        cfg = config_from_args(args)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    from services.trainer.launcher import main_run  # Ray and torch load only once the arguments are good

    return main_run(cfg)
