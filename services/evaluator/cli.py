"""`python -m services.evaluator`: score a student or a teacher on the robustness suites of the paper (Sec. 4.1).

    python -m services.evaluator --model CHECKPOINT_OR_TEACHER --suites LIST --data-root URI --out URI
    python -m services.evaluator table RESULTS_URI [RESULTS_URI ...] [--out table.md]

Every flag is a field of the job's config model (schemas.jobs.EvalJobConfig), the same one `POST /runs`
validates; `--config FILE` reads a whole config (e.g. the control plane's runs/<id>/run.json).

Suites (`--suites`, comma- or space-separated; `NAME=URI` points one suite elsewhere than --data-root/NAME):
  imagenet-val, imagenet-v2, imagenet-sketch, stylized-imagenet
        1,000-class ImageFolders (folders named by WordNet id, or 0..999 as ImageNetV2 ships), all 1,000
        logits scored.
  imagenet-a, imagenet-r
        200-class subsets: a 1,000-way model is scored on the 200 listed logits only (Hendrycks et al.).
  imagenet-c
        <corruption>/<severity>/<wnid>/ folders; reports the mean Corruption Error over 15 corruptions x 5
        severities normalised by AlexNet's errors (Hendrycks & Dietterich 2019), plus top-1 per folder.
        Without the official set, --build-c-from URI builds one from any ImageFolder with the standard
        corruption functions (the imagecorruptions library); --c-corruptions / --c-severities pick a
        subset for quick runs (marked as not comparable in tables).
  imagefolder:URI
        any ImageFolder (e.g. a PACS domain); folder classes are matched to the model's class names,
        optionally through --class-map, and scored on the matched logits only.
Every suite reports top-1 with a 95% interval, the number of images, skipped unreadable images (with
reasons) and per-class accuracy.

Models (`--model`):
  PATH_OR_URI          a timm checkpoint (plain state_dict) with --arch and --class-names, or a file / run
                       folder with a JSON giving them (arch|model, class_names, image_size); default
                       classes: the 1,000 ImageNet classes
  teacher:PRESET       the preset's teacher (tiny, paper), e.g. CLIP ViT-L/14 zero-shot; --set overrides
  clip:MODEL           an open_clip model zero-shot, with --pretrained TAG_OR_PATH
Students and teachers take the same harness: [0, 1] pixels, each model applies its own normalisation.

Outputs under --out (any fsspec URL): results/<id>.json (one per evaluation; the folder is the registry
the control plane lists) and results.md (paper-style table of every result in the folder).
Execution: batched; bf16 autocast on CUDA; one Ray actor per GPU when a Ray cluster (--ray-address or
RAY_ADDRESS, e.g. under `ray job submit`) or this machine has several GPUs; in this process otherwise.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from datetime import datetime, timezone

from schemas.jobs import EvalJobConfig
from services.jobs.cli import Flag, job_config_from_args, job_parser, key_value
from services.jobs.presets import typed_overrides
from services.evaluator.corruptions import CORRUPTIONS, SEVERITIES, CorruptionConfig, build_corrupted_folder
from services.evaluator.harness import HarnessConfig, resolve_device
from services.evaluator.models import ModelError, parse_model
from services.evaluator.results import (TABLE_NAME, ResultError, list_results, make_result, write_predictions,
                                        write_result)
from services.evaluator.runner import EvalOptions, evaluate
from services.evaluator.suites import SuiteError, SuiteRequest, parse_suites
from services.evaluator.tables import markdown_table
from services.source.class_map import ClassMapError
from services.storage import StorageError, atomic_write_bytes, check_writable, join, open_filesystem



def _redacted(argv: list[str]) -> list[str]:
    """The command line without --storage-option values (credentials must not land in result files)."""
    out, hide = [], False
    for arg in argv:
        out.append("<redacted>" if hide else "--storage-option=<redacted>" if arg.startswith("--storage-option=") else arg)
        hide = arg == "--storage-option"
    return out


GROUPS = {
    "model": ["model", "name", "arch", "class_names", "pretrained", "templates", "overrides", "image_size",
              "crop_pct"],
    "suites and data": ["suites", "data_root", "out", "class_map", "limit", "seed", "ci", "storage_options",
                        "predictions"],
    "imagenet-c": ["build_c_from", "c_out", "c_corruptions", "c_severities", "c_image_size", "c_workers"],
    "execution": ["batch_size", "device", "bf16", "workers", "actor_cpus", "read_threads", "ray_address"],
}
FLAGS = {"bf16": Flag("--no-bf16", help="fp32 on CUDA too (default: bf16 autocast on CUDA)"),
         "build_c_from": Flag(metavar="URI"), "c_out": Flag(metavar="URI")}


def build_parser() -> argparse.ArgumentParser:
    return job_parser(EvalJobConfig, prog="python -m services.evaluator", description=__doc__, groups=GROUPS,
                      flags=FLAGS)


def build_table_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m services.evaluator table",
                                description="Combine evaluation results into the paper's table layout.")
    p.add_argument("results", nargs="+", help="result JSON files, --out folders or results/ folders (any fsspec URL)")
    p.add_argument("--out", help="write the Markdown here (default: print it)")
    p.add_argument("--storage-option", action="append", default=[], type=key_value, metavar="KEY=VALUE",
                   help="fsspec option for remote URLs (repeatable)")
    return p


def table_main(argv: list[str]) -> int:
    args = build_table_parser().parse_args(argv)
    options = dict(args.storage_option)
    results = [r for uri in args.results for r in list_results(uri, options)]
    text = markdown_table(sorted(results, key=lambda r: r["created_at"]))
    if args.out:
        fs, path = open_filesystem(args.out, options)
        atomic_write_bytes(fs, path, text.encode())
    else:
        print(text, end="")
    return 0


def _build_c(requests: list[SuiteRequest], c_out: str, args, options: dict) -> None:
    """Build (or reuse) the -C set that the imagenet-c suite points at, from --build-c-from."""
    c_requests = [r for r in requests if r.suite.protocol == "imagenet-c"]
    if not c_requests:
        raise SuiteError("--build-c-from needs imagenet-c among --suites")
    if c_requests[0].uri != c_out:  # never write into a folder given as a suite (it may be the official set)
        raise SuiteError(f"with --build-c-from, give the built set's location with --c-out, not {c_requests[0].label}=URI")
    config = CorruptionConfig(tuple(args.c_corruptions or CORRUPTIONS), tuple(args.c_severities or SEVERITIES),
                              image_size=args.c_image_size, seed=args.seed)
    build_corrupted_folder(args.build_c_from, c_requests[0].uri, config, options, workers=args.c_workers,
                           limit=args.limit)


def evaluate_main(argv: list[str] | None) -> int:
    parser = build_parser()
    try:
        args = job_config_from_args(EvalJobConfig, parser.parse_args(argv), FLAGS)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    options = dict(args.storage_options)
    fs, out = open_filesystem(args.out, options)
    check_writable(fs, out)
    spec = parse_model(args.model, arch=args.arch, class_names=args.class_names, pretrained=args.pretrained,
                       templates=args.templates, overrides=typed_overrides(args.overrides), label=args.name,
                       image_size=args.image_size, crop_pct=args.crop_pct, storage_options=options)
    c_out = args.c_out or join(args.out.rstrip("/"), "imagenet-c-built")
    requests = parse_suites(args.suites, args.data_root, {"imagenet-c": c_out} if args.build_c_from else None)
    if args.build_c_from:
        _build_c(requests, c_out, args, options)
    eval_options = EvalOptions(args.class_map, tuple(args.c_corruptions or CORRUPTIONS),
                               tuple(args.c_severities or SEVERITIES), args.limit, args.seed, args.ci, options)
    harness = HarnessConfig(batch_size=args.batch_size, device=args.device, bf16=args.bf16,
                            workers=args.workers, actor_cpus=args.actor_cpus, read_threads=args.read_threads,
                            ray_address=args.ray_address, predictions=args.predictions)
    started = datetime.now(timezone.utc)
    from services.evaluator.tracking import start_evaluation, track_result

    tracker = start_evaluation(spec, options)  # a no-op without MLFLOW_TRACKING_URI
    suites = evaluate(spec, requests, eval_options, harness)
    predictions = {label: s.pop("predictions", []) for label, s in suites.items()}  # not in the result JSON
    settings = {"harness": dataclasses.asdict(harness), "device": str(resolve_device(args.device)),
                "options": {**dataclasses.asdict(eval_options), "storage_options": None},  # may hold secrets
                "argv": _redacted(sys.argv[1:] if argv is None else argv),
                **({"mlflow": tracker.record()} if tracker.active else {})}
    result = make_result(spec, suites, settings, started, datetime.now(timezone.utc))
    uri = write_result(args.out, result, options)
    if args.predictions:
        write_predictions(args.out, result["id"], predictions, options)
    table = markdown_table(list_results(args.out, options))
    atomic_write_bytes(fs, join(out, TABLE_NAME), table.encode())
    track_result(tracker, result)
    print(json.dumps({"result": uri, "metrics": result["metrics"]}, indent=2))
    print(table)
    failed = {label: s["error"] for label, s in suites.items() if s.get("error")}
    for label, message in failed.items():
        print(f"error: suite {label!r}: {message}", file=sys.stderr)
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        if argv and argv[0] == "table":
            return table_main(argv[1:])
        return evaluate_main(argv)
    except (SuiteError, ModelError, ResultError, ClassMapError, StorageError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
