"""Step time of the trainer's objectives on one student and batch: `ce` vs `dad` (stored / online logits) vs `dat`.

    python benchmarks/trainer_step.py --student resnet18 --image-size 64 --batch-size 32 --device cpu
    python benchmarks/trainer_step.py --student resnet50 --image-size 224 --batch-size 128 --device cuda \\
        --bf16 --channels-last --preset paper --set teacher.pretrained=null   # random-init ViT-L/14 teacher

Runs the trainer's real step (services.trainer.step.compute_losses + backward + SGD) on synthetic data;
reports the median of --steps steps after --warmup steps. Two comparisons, because "the same batch" can
mean two things:

  same images   ce on N images vs dad on N/2 clean + their N/2 Q(x'): the student does the same work, so
                the ratio is DAD's own overhead (KD terms, stored logits, pairing). Target: <= 1.3x.
  per example   ce on B clean vs dad on B clean + B Q(x'): DAD trains on twice the images, the paper's
                "2x the cost of standard training" (Sec. 3.3).

`online` runs the preset's teacher on every view: its cost is the teacher's, which `stored` avoids.
`dat` is DAT on B clean images: Q(x), the student's own attack (preset section `dat`: one forward + backward per
step), Q(x'_s), then one forward of B clean + B Q(x'_s); its per-example ratio sits next to DAD's.

`--views K` adds augmentation, with data loading counted (in this process, as with --loader-workers 0): dad on
B clean + B Q(x') read from a sample set written in a temp folder (synthetic images, K stored views with random
logits: speed only), as (1) stored images, no augmentation, (2) stored views (view e mod K rebuilt, stored
logits, no teacher: services.trainer.data.views), (3) RandomResizedCrop + flip with the online teacher.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import torch  # noqa: E402

from benchmarks.common import add_output_args, machine, write_json  # noqa: E402
from dad_core import (  # noqa: E402
    PixelSpaceClassifier, create_discretizer, create_student, create_teacher, get_preset, parse_overrides,
)
from services.trainer.step import Batch, StepModels, StepSettings, compute_losses  # noqa: E402


def synthetic_batch(clean: int, adversarial: int, image_size: int, num_classes: int, seed: int = 0) -> Batch:
    """`clean` examples, the first `adversarial` of which have an accepted Q(x') partner."""
    g = torch.Generator().manual_seed(seed)
    shape = (clean, 3, image_size, image_size)
    images = torch.randint(0, 256, shape, generator=g, dtype=torch.uint8)
    logits = torch.randn(clean, num_classes, generator=g).half().float()  # stored as float16
    has_adv = torch.arange(clean) < adversarial
    adv = torch.randint(0, 256, shape, generator=g, dtype=torch.uint8) * has_adv.view(-1, 1, 1, 1)
    adv_logits = torch.randn(clean, num_classes, generator=g).half().float() * has_adv.view(-1, 1)
    labels = torch.randint(0, num_classes, (clean,), generator=g)
    return Batch(images, labels, logits, adv.to(torch.uint8), adv_logits, has_adv)


def time_interleaved(cases: dict[str, tuple[StepModels, Batch, StepSettings]], device: torch.device,
                     steps: int, warmup: int) -> dict[str, float]:
    """Median seconds per optimizer step (forward, loss, backward, SGD update) of each case.

    Cases take turns step by step, so load from other processes on a shared machine slows them all alike
    and the ratios stay meaningful even when the absolute times drift.
    """
    opts = {name: torch.optim.SGD(m.student.parameters(), lr=1e-3, momentum=0.9) for name, (m, _, _) in cases.items()}
    times: dict[str, list[float]] = {name: [] for name in cases}
    for i in range(warmup + steps):
        for name, (models, batch, settings) in cases.items():
            if device.type == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            losses = compute_losses(models, batch, settings, device)
            opts[name].zero_grad(set_to_none=True)
            losses["loss"].backward()
            opts[name].step()
            if device.type == "cuda":
                torch.cuda.synchronize()
            if i >= warmup:
                times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(t) for name, t in times.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--student", default="resnet18", help="timm model name (default: %(default)s)")
    p.add_argument("--image-size", type=int, default=64, help="(default: %(default)s)")
    p.add_argument("--batch-size", type=int, default=32, help="N: images through the student in the same-images "
                                                              "comparison (default: %(default)s)")
    p.add_argument("--num-classes", type=int, default=100, help="(default: %(default)s)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu", help="cpu or cuda")
    p.add_argument("--steps", type=int, default=10, help="timed steps (default: %(default)s)")
    p.add_argument("--warmup", type=int, default=3, help="untimed steps first (default: %(default)s)")
    p.add_argument("--preset", default="tiny", help="teacher for `online` (default: %(default)s)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="preset override, e.g. teacher.pretrained=null for a random-init teacher of the real size")
    p.add_argument("--bf16", action="store_true", help="bfloat16 autocast")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--no-online", action="store_true", help="skip the online-teacher measurement")
    p.add_argument("--no-dat", action="store_true", help="skip the DAT measurement (the preset's discretizer)")
    p.add_argument("--views", type=int, default=0, metavar="K", help="also compare stored views (K per image) "
                                                                      "with stored no-augmentation and online-teacher "
                                                                      "augmentation, data loading included")
    add_output_args(p)
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    preset = get_preset(args.preset, parse_overrides(args.overrides))
    precision = "bf16" if args.bf16 else "fp32"
    n, k = args.batch_size, args.num_classes

    torch.manual_seed(0)
    model = create_student(args.student, num_classes=k).to(device)
    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    pixel = PixelSpaceClassifier(model).to(device)
    student_only = StepModels(model, pixel)

    def settings(objective: str) -> StepSettings:
        return StepSettings(objective, preset.distill, preset.dat, 0.0, precision, args.channels_last)

    ce_batch = synthetic_batch(n, 0, args.image_size, k)
    ce_batch = Batch(ce_batch.images, ce_batch.labels)  # ce reads images and labels only
    half = synthetic_batch(n // 2, n // 2, args.image_size, k)   # N/2 clean + N/2 Q(x') = N images
    full = synthetic_batch(n, n, args.image_size, k)             # N clean + N Q(x') = 2N images
    cases = {"ce": (student_only, ce_batch, settings("ce")),
             "stored_same": (student_only, half, settings("dad")),
             "stored_full": (student_only, full, settings("dad"))}
    rows = [("ce", f"{n} clean", "ce", n), ("dad stored", f"{n // 2} clean + {n // 2} Q(x')", "stored_same", n),
            ("dad stored", f"{n} clean + {n} Q(x')", "stored_full", 2 * n)]
    if not args.no_online:
        teacher = create_teacher(preset.teacher, [f"class {i}" for i in range(k)], device)
        online = StepModels(model, pixel, teacher)
        strip = lambda b: Batch(b.images, b.labels, None, b.adv_images, None, b.has_adv)  # noqa: E731
        cases["online_same"] = (online, strip(half), settings("dad"))
        cases["online_full"] = (online, strip(full), settings("dad"))
        rows += [("dad online", f"{n // 2} clean + {n // 2} Q(x')", "online_same", n),
                 ("dad online", f"{n} clean + {n} Q(x')", "online_full", 2 * n)]
    if not args.no_dat:
        dat_models = StepModels(model, pixel, None, create_discretizer(preset.discretizer, device))
        cases["dat"] = (dat_models, ce_batch, settings("dat"))
        rows += [("dat", f"{n} clean + {n} Q(x'_s)", "dat", 2 * n)]
    t = time_interleaved(cases, device, args.steps, args.warmup)
    views = views_comparison(args, model, pixel, preset, settings("dad"), device) if args.views else None

    print(f"student {args.student} at {args.image_size} px, {args.num_classes} classes, {device} "
          f"({torch.get_num_threads()} threads), {precision}{', channels_last' if args.channels_last else ''}; "
          f"median of {args.steps} steps after {args.warmup}; online teacher: {preset.teacher.model}")
    print(f"{'objective':<12} {'batch':<24} {'ms/step':>9} {'student img/s':>14}")
    for name, batch_desc, case, images in rows:
        print(f"{name:<12} {batch_desc:<24} {t[case] * 1e3:9.1f} {images / t[case]:14.1f}")
    print(f"dad stored / ce, same images:  {t['stored_same'] / t['ce']:.2f}x  (target <= 1.3x)")
    print(f"dad stored / ce, per example:  {t['stored_full'] / t['ce']:.2f}x  (paper: ~2x, twice the images)")
    if not args.no_dat:
        print(f"dat / ce, per example:         {t['dat'] / t['ce']:.2f}x  (attack + Q twice + twice the images; "
              f"dad stored: {t['stored_full'] / t['ce']:.2f}x)")
    if not args.no_online:
        print(f"dad online / ce, same images:  {t['online_same'] / t['ce']:.2f}x")
        print(f"dad online / ce, per example:  {t['online_full'] / t['ce']:.2f}x")
    if views:
        print(f"augmentation, dad on {n} clean + {n} Q(x') per step, data loading in this process "
              f"({args.views} stored views; online: RandomResizedCrop + flip, teacher {preset.teacher.model}):")
        print(f"{'data':<22} {'load ms':>8} {'step ms':>8} {'total ms':>9} {'vs stored':>10}")
        for name, label in (("stored", "stored, no augment."), ("views", "stored views"),
                            ("online", "online teacher")):
            v = views[name]
            print(f"{label:<22} {v['load_ms']:8.1f} {v['step_ms']:8.1f} {v['total_ms']:9.1f} "
                  f"{v['total_ms'] / views['stored']['total_ms']:9.2f}x")
    if args.json:
        result = {"student": args.student, "image_size": args.image_size, "batch_size": n, "num_classes": k,
                  "device": str(device), "device_name": machine(device), "threads": torch.get_num_threads(),
                  "precision": precision, "channels_last": args.channels_last, "teacher": preset.teacher.model,
                  "steps": args.steps, "warmup": args.warmup, "ms_per_step": {c: t[c] * 1e3 for c in t},
                  "student_images_per_s": {case: images / t[case] for _, _, case, images in rows},
                  "ratio_stored_same_images": t["stored_same"] / t["ce"],
                  "ratio_stored_per_example": t["stored_full"] / t["ce"]}
        if not args.no_dat:
            result["ratio_dat_per_example"] = t["dat"] / t["ce"]
            result["dat_attack"] = dataclasses.asdict(preset.dat)
            result["discretizer"] = preset.discretizer.config
        if not args.no_online:
            result["ratio_online_same_images"] = t["online_same"] / t["ce"]
            result["ratio_online_per_example"] = t["online_full"] / t["ce"]
        if views:
            result["views"] = {"count": args.views, **views,
                               "ratio_views_vs_stored": views["views"]["total_ms"] / views["stored"]["total_ms"],
                               "ratio_online_vs_stored": views["online"]["total_ms"] / views["stored"]["total_ms"],
                               "ratio_online_vs_views": views["online"]["total_ms"] / views["views"]["total_ms"]}
        write_json(args.json, result)
    return 0


def views_set(folder: str, n: int, image_size: int, num_classes: int, k: int) -> str:
    """A published sample set of n synthetic items, each with k views of x and of Q(x') (random logits)."""
    from datetime import datetime, timezone

    import numpy as np

    from dad_core.views import INTERPOLATION, ViewConfig, draw_views
    from schemas import sample_store as ss
    from schemas.manifest import (
        CodeVersion, ModelInfo, SampleSetConfig, SampleSetPlan, SourceFingerprint, Statistics, ViewsInfo,
    )
    from services.sample_store import SampleBatch, SampleSetStore, StoredViews, TeacherVerdicts, build_rows
    from services.sample_store.publishing import build_manifest

    rng, fp, s = np.random.default_rng(0), "b" * 64, image_size
    cells = rng.integers(0, 256, (2, n, -(-s // 8), -(-s // 8), 3), dtype=np.uint8)
    clean, adversarial = np.repeat(np.repeat(cells, 8, 2), 8, 3)[:, :, :s, :s]

    def verdicts():
        logits = rng.normal(size=(n, num_classes)).astype(np.float16)
        return TeacherVerdicts(logits, logits.argmax(1), np.ones(n, np.float32), np.ones(n, bool))

    def views(kind):
        boxes = np.array([[(*v.as_tuple()[:4], int(v.flip)) for v in
                           draw_views(ViewConfig(k), 0, ss.sample_id(fp, f"c/{i}", kind), s, s)] for i in range(n)],
                         np.int32)
        return StoredViews(boxes, rng.normal(size=(n, k, num_classes)).astype(np.float16))

    ids = [f"c/{i}" for i in range(n)]
    batch = SampleBatch(ids, ids, np.arange(n) % num_classes, np.ascontiguousarray(clean),
                        np.ascontiguousarray(adversarial), verdicts(), verdicts(),
                        clean_views=views(ss.KIND_CLEAN), adversarial_views=views(ss.KIND_ADVERSARIAL))
    store = SampleSetStore(folder)
    store.commit_shard(0, 0, n, build_rows(fp, [batch]), Statistics(seen=n, clean=n, accepted=n), {}, fp, "c" * 64,
                       "c" * 64, "bench")
    model = ModelInfo(kind="bench", name="random", weights=None, checksum="c" * 64)
    info = ViewsInfo(count=k, scale=[0.08, 1.0], ratio=[0.75, 4 / 3], flip=True, interpolation=INTERPOLATION,
                     source_size=s, top_k=None, kinds=[ss.KIND_CLEAN, ss.KIND_ADVERSARIAL])
    config = SampleSetConfig(preset="bench", preset_config={}, fingerprint=fp, teacher=model, discretizer=model,
                             attack={}, seed=0, image_size=s, shard_size=n, batch_size=n,
                             class_ids=[str(i) for i in range(num_classes)],
                             class_names=[f"class {i}" for i in range(num_classes)], views=info)
    plan = SampleSetPlan(name="bench", config=config, num_shards=1, listing=Statistics(),
                         source=SourceFingerprint(uri="synthetic", format="imagefolder", num_items=n,
                                                  num_classes=num_classes, sha256="0" * 64),
                         started_at=datetime.now(timezone.utc))
    return store.publish(build_manifest(plan, store.committed_shards(), "bench", 0.0, CodeVersion()))


def views_comparison(args, model, pixel, preset, dad: StepSettings, device: torch.device) -> dict[str, dict]:
    """ms per step (load B examples + their Q(x') in this process, then the step) of stored / views / online."""
    import tempfile

    import numpy as np
    from torchvision.transforms import v2

    from schemas import sample_store as ss
    from services.sample_store import SampleSetDataset
    from services.trainer.data import PairedSampleDataset, collate_examples, pair_rows, to_uint8_tensor
    from services.trainer.data.views import StoredViewsDataset

    n, s, k = args.batch_size, args.image_size, args.num_classes
    with tempfile.TemporaryDirectory() as folder:
        uri = views_set(folder, 4 * n, s, k, args.views)
        rows = SampleSetDataset(uri, transform=to_uint8_tensor)
        pairs = pair_rows(rows.index[ss.COL_KIND].to_pylist(), rows.index[ss.COL_SOURCE_ID].to_pylist())
        crop = v2.Compose([v2.RandomResizedCrop(s, antialias=True), v2.RandomHorizontalFlip()])
        augmented = SampleSetDataset(uri, transform=lambda img: to_uint8_tensor(crop(img)))
        teacher = create_teacher(preset.teacher, [f"class {i}" for i in range(k)], device)
        cases = {"stored": (PairedSampleDataset(rows, pairs, True, True), StepModels(model, pixel)),
                 "views": (StoredViewsDataset(PairedSampleDataset(rows, pairs, True, True), args.views),
                           StepModels(model, pixel)),
                 "online": (PairedSampleDataset(augmented, pairs, True, False), StepModels(model, pixel, teacher))}
        opt = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9)
        times: dict[str, dict[str, list[float]]] = {c: {"load": [], "step": []} for c in cases}
        for i in range(args.warmup + args.steps):
            start = (i % 4) * n
            for name, (dataset, models) in cases.items():
                t0 = time.perf_counter()
                keys = [(j, i) for j in range(start, start + n)] if name == "views" else range(start, start + n)
                batch = collate_examples([dataset[j] for j in keys])
                t1 = time.perf_counter()
                losses = compute_losses(models, batch, dad, device)
                opt.zero_grad(set_to_none=True)
                losses["loss"].backward()
                opt.step()
                if device.type == "cuda":
                    torch.cuda.synchronize()
                if i >= args.warmup:
                    times[name]["load"].append(t1 - t0)
                    times[name]["step"].append(time.perf_counter() - t1)
    out = {}
    for name, t in times.items():
        load, step = statistics.median(t["load"]) * 1e3, statistics.median(t["step"]) * 1e3
        total = float(np.median(np.add(t["load"], t["step"]))) * 1e3
        out[name] = {"load_ms": load, "step_ms": step, "total_ms": total}
    return out


if __name__ == "__main__":
    sys.exit(main())
