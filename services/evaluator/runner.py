"""One evaluation: list each suite's folders, match classes, run the harness, summarise with dad_core.metrics.

Everything that can be wrong with the input (a missing folder, classes that do not map, an unreadable
checkpoint) is found before the first image is scored, and the error names the suite and location.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from dad_core import metrics
from dad_core.imagenet import all_imagenet_wnids, imagenet1k_classnames
from services.evaluator.corruptions import CORRUPTIONS
from services.evaluator.harness import EvalWorker, FolderCounts, FolderTask, HarnessConfig, run_tasks
from services.evaluator.models import ModelSpec
from services.evaluator.suites import (ClassProtocol, SuiteError, SuiteRequest, check_imagenet_model,
                                       imagefolder_protocol, imagenet_protocol, sample_items)
from services.source import ReadSpec, SourceError, SourceListing, list_source
from services.source.class_map import ClassMapError
from services.storage import StorageError, join, missing_path_hint, open_filesystem


@dataclass(frozen=True)
class EvalOptions:
    class_map: str | None = None                 # imagefolder suites: folder name -> model class name
    c_corruptions: tuple[str, ...] = CORRUPTIONS
    c_severities: tuple[int, ...] = metrics.SEVERITIES
    limit: int | None = None                     # at most this many images per folder (quick runs)
    seed: int = 0                                # which images `limit` keeps
    ci_method: str = "wilson"
    storage_options: dict[str, Any] = field(default_factory=dict)


@dataclass
class SuitePlan:
    request: SuiteRequest
    tasks: list[FolderTask]
    listing_skipped: dict[str, int]


def _list(request: SuiteRequest, uri: str, options: EvalOptions, class_map: str | None = None) -> SourceListing:
    try:
        return list_source(uri, "imagefolder", class_map=class_map, storage_options=options.storage_options)
    except (SourceError, StorageError, ClassMapError) as e:
        raise SuiteError(f"suite {request.label!r}: {e}") from e


def _is_imagenet_labelled(request: SuiteRequest, listing: SourceListing) -> bool:
    """ImageNet suites are; a -C set is when built from an ImageNet-labelled folder (else: imagefolder rules)."""
    if request.suite.protocol == "imagenet-c":
        return all_imagenet_wnids(listing.class_ids)
    return request.suite.protocol != "imagefolder"


def _protocol(request: SuiteRequest, listing: SourceListing, spec: ModelSpec) -> tuple[ClassProtocol, tuple | None]:
    """The class protocol and, for a zero-shot teacher, the class names it must score."""
    if not _is_imagenet_labelled(request, listing):
        if spec.zero_shot:
            n = len(listing.class_ids)
            return ClassProtocol(tuple(listing.class_ids), None, tuple(range(n))), tuple(listing.class_names)
        return imagefolder_protocol(listing.class_ids, listing.class_names, spec.class_names, request.label), None
    if not spec.zero_shot:
        check_imagenet_model(spec.class_names, request.label)
    vocabulary = tuple(imagenet1k_classnames()) if spec.zero_shot else None
    return imagenet_protocol(listing.class_ids, request.label, request.suite.subset), vocabulary


def _task(key: str, request: SuiteRequest, listing: SourceListing, spec: ModelSpec, options: EvalOptions,
          crop_pct: float | None = None) -> FolderTask:
    protocol, vocabulary = _protocol(request, listing, spec)
    read = ReadSpec.for_listing(listing, image_size=0, storage_options=options.storage_options)  # size: per model
    items = tuple(sample_items(listing.items, options.limit, options.seed))
    return FolderTask(key, read, items, protocol, vocabulary, crop_pct)


def plan_suite(request: SuiteRequest, spec: ModelSpec, options: EvalOptions) -> SuitePlan:
    """List a suite's folder(s) and resolve its protocol; raises SuiteError naming what is wrong."""
    if request.suite.protocol != "imagenet-c":
        class_map = options.class_map if request.suite.protocol == "imagefolder" else None
        listing = _list(request, request.uri, options, class_map)
        return SuitePlan(request, [_task(request.label, request, listing, spec, options)], listing.skipped.reasons)
    fs, root = open_filesystem(request.uri, options.storage_options)
    if not fs.isdir(root):
        raise SuiteError(f"suite {request.label!r}: folder {request.uri!r} does not exist"
                         f"{missing_path_hint(request.uri)} (build one from any ImageFolder with --build-c-from)")
    missing = [f"{c}/{s}" for c in options.c_corruptions for s in options.c_severities
               if not fs.isdir(join(root, c, str(s)))]
    if missing:
        raise SuiteError(f"suite {request.label!r}: {request.uri!r} lacks {len(missing)} corruption folders, "
                         f"e.g. {missing[:5]} (choose a subset with --c-corruptions / --c-severities)")
    tasks, skipped = [], {}
    for c in options.c_corruptions:
        for s in options.c_severities:
            listing = _list(request, join(request.uri.rstrip("/"), c, str(s)), options, options.class_map)
            if tasks and tuple(listing.class_ids) != tasks[0].protocol.target_ids:
                raise SuiteError(f"suite {request.label!r}: {c}/{s} has other classes than "
                                 f"{tasks[0].key.split('/', 1)[1]}; every corruption folder needs the same classes")
            # ImageNet-C ships centre-cropped 224 px images: evaluate them whole, as Hendrycks' test.py does.
            tasks.append(_task(f"{request.label}/{c}/{s}", request, listing, spec, options, crop_pct=1.0))
            for reason, n in listing.skipped.reasons.items():
                skipped[reason] = skipped.get(reason, 0) + n
    return SuitePlan(request, tasks, skipped)


def summarise_counts(counts: FolderCounts, protocol: ClassProtocol, ci_method: str) -> dict[str, Any]:
    """Top-1 (%), its 95% interval, image and skip counts, and per-class accuracy of one folder."""
    correct, total = sum(counts.correct), sum(counts.total)
    out: dict[str, Any] = {"num_images": total, "num_skipped": counts.num_skipped, "skipped_reasons": counts.skipped,
                           "skipped_examples": counts.skipped_examples, "correct": correct}
    if total == 0:
        out.update(top1=None, ci95=None, error=f"no readable images ({counts.num_skipped} skipped: {counts.skipped})")
    else:
        lo, hi = metrics.accuracy_interval(correct, total, ci_method)
        out.update(top1=100 * correct / total, ci95=[100 * lo, 100 * hi], ci_method=ci_method)
    per_class = metrics.per_class_accuracy(counts.correct, counts.total)
    out["per_class"] = {cid: {"top1": None if acc is None else 100 * acc, "correct": c, "total": t}
                        for cid, acc, c, t in zip(protocol.target_ids, per_class, counts.correct, counts.total)}
    return out


def summarise_suite(plan: SuitePlan, counts: Mapping[str, FolderCounts], options: EvalOptions) -> dict[str, Any]:
    """The result JSON's entry for one suite."""
    request = plan.request
    base = {"suite": request.suite.name, "uri": request.uri, "protocol": request.suite.protocol,
            "column": request.suite.column, "lower_is_better": request.suite.lower_is_better,
            "listing_skipped": plan.listing_skipped}
    if request.suite.protocol == "imagenet-c":
        return {**base, **summarise_imagenet_c(plan, counts, options)}
    task = plan.tasks[0]
    summary = {**base, "metric": "top1", **summarise_counts(counts[task.key], task.protocol, options.ci_method)}
    if counts[task.key].predictions:  # kept only when asked (HarnessConfig.predictions); the job writes them apart
        summary["predictions"] = counts[task.key].predictions
    return summary


def summarise_imagenet_c(plan: SuitePlan, counts: Mapping[str, FolderCounts], options: EvalOptions) -> dict[str, Any]:
    """mCE from top-1 per (corruption, severity) folder; the overall numbers pool every folder."""
    pooled = FolderCounts.empty(plan.request.label, len(plan.tasks[0].protocol.target_ids))
    top1: dict[str, dict[str, float | None]] = {}
    for task in plan.tasks:
        _, corruption, severity = task.key.rsplit("/", 2)
        c = counts[task.key]
        pooled.merge(c)
        top1.setdefault(corruption, {})[severity] = 100 * sum(c.correct) / sum(c.total) if sum(c.total) else None
    out = {**summarise_counts(pooled, plan.tasks[0].protocol, options.ci_method), "metric": "mCE",
           "top1_by_corruption": top1, "corruptions": list(options.c_corruptions),
           "severities": list(options.c_severities)}
    if any(v is None for by_severity in top1.values() for v in by_severity.values()):
        return {**out, "mce": None, "ce": None, "complete": False,
                "error": "a corruption folder had no readable images, so mCE is undefined"}
    errors = {c: [1 - v / 100 for v in by_severity.values()] for c, by_severity in top1.items()}
    # The benchmark's mCE needs all 15 x 5 folders of ImageNet classes (AlexNet's errors are ImageNet's).
    complete = (set(options.c_corruptions) == set(CORRUPTIONS) and tuple(sorted(options.c_severities)) ==
                metrics.SEVERITIES and all_imagenet_wnids(plan.tasks[0].protocol.target_ids))
    return {**out, "mce": 100 * metrics.mean_corruption_error(errors),
            "ce": {c: 100 * v for c, v in metrics.corruption_errors(errors).items()}, "complete": complete}


def evaluate(spec: ModelSpec, requests: Sequence[SuiteRequest], options: EvalOptions,
             config: HarnessConfig) -> dict[str, dict[str, Any]]:
    """Evaluate `spec` on every suite; returns {suite label: summary}, in request order."""
    worker = EvalWorker(spec, config)
    if not spec.zero_shot:
        worker.model_for(None)  # an unreadable checkpoint fails here, before any folder is listed
    plans = [plan_suite(r, spec, options) for r in requests]
    tasks = [t for p in plans for t in p.tasks]
    print(f"evaluating {spec.label!r} on {sum(len(t.items) for t in tasks)} images in {len(tasks)} folders "
          f"({', '.join(r.label for r in requests)})", file=sys.stderr)
    counts = run_tasks(spec, tasks, config, worker=worker)
    return {p.request.label: summarise_suite(p, counts, options) for p in plans}
