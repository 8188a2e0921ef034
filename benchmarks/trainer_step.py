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
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import torch  # noqa: E402

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
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--json", default=None, metavar="PATH", help="also write the numbers to this JSON file")
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
    if args.json:
        result = {"student": args.student, "image_size": args.image_size, "batch_size": n, "num_classes": k,
                  "device": str(device), "device_name": torch.cuda.get_device_name(device) if device.type == "cuda"
                  else platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
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
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
