"""`python -m experiments.pacs --pacs PATH`: does DAD distil robustness on real images? (PACS, through the services)

Roles, as in the paper: `photo` is the in-distribution training set (ImageNet's role); `art_painting` and
`cartoon` are natural distribution shifts (ImageNet-R's role) that students never see. No CLIP weights can be
had here, so the teacher is a timm model trained with a practitioner's recipe on all three domains (the paper
shows non-CLIP robust teachers transfer too, Tables 5 and 9), and Q is a VQ model fitted to photo only (like
the paper's ImageNet VQGAN).

Stages (each a real service run, keyed by a hash of its whole configuration, reused only when that matches):
  splits -> teacher (services.trainer on every domain's train split) -> Q (services.vq_trainer, photo)
  -> attack grid: per (norm, step) a sample set (services.generator on photo/train) and a short DAD student,
     scored on photo VAL; the best is the attack (pass --attack NORM:STEP to skip the grid)
  -> students on photo/train, same recipe and data order: ce, kd, dat, dad and DAD's controls (no attack:
     stored Q(x) rows in place of Q(x'); no filter: every Q(x'), rejected ones too), for each seed
  -> evaluation (services.evaluator --predictions on each domain's test split)
  -> report: mean ± sd over seeds, paired bootstrap intervals and p-values on the same test images.

Nothing is tuned on a test split: the teacher's recipe on the teacher's val splits, the attack on photo val.
Extra shifted domains with the same classes plug in with --extra-domain NAME=PATH.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from dad_core.discretizers.vqgan import load_taming_config
from experiments.report import write_report
from experiments.splits import materialise_splits
from experiments.stages import StageRunner, config_key

DOMAINS = ("photo", "art_painting", "cartoon")
FRACTIONS = {"train": 0.7, "val": 0.1, "test": 0.2}
# The attack grid, declared before any run: App. C's L2 step (0.1) up to the old sign step's size. At 64 px a
# sign step s has L2 norm s * sqrt(3 * 64 * 64) = 110.9 s, so each L-inf point matches an L2 point's size.
GRID = (("l2", 0.1), ("l2", 1.1), ("l2", 11.0), ("linf", 0.001), ("linf", 0.01), ("linf", 0.1))
# Student variants: name -> (objective, extra trainer settings). The controls share DAD's objective and set.
VARIANTS = {
    "ce": ("ce", {}),
    "kd": ("kd", {}),
    "dad": ("dad", {}),
    "dad-no-attack": ("dad", {"adversarial_rows": "discretized"}),
    "dad-no-filter": ("dad", {"adversarial_rows": "all"}),
    "dad-no-filter-matched": ("dad", {"adversarial_rows": "count-matched"}),
    "dat": ("dat", {}),
}
# Trained unless --variants says otherwise (the count-matched control on request: one more student per seed).
DEFAULT_VARIANTS = ("ce", "kd", "dad", "dad-no-attack", "dad-no-filter", "dat")


@dataclass(frozen=True)
class Recipe:
    """One training recipe, the same for every student (the teacher has its own)."""

    epochs: int
    lr: float = 2e-3
    batch_size: int = 64
    warmup_epochs: float = 1.0
    label_smoothing: float = 0.0
    random_resized_crop: float | None = None
    hflip: bool = False
    randaugment: str | None = None

    def settings(self) -> dict[str, Any]:
        """The trainer's run-config fields (schemas.api.TrainRunConfig) this recipe sets."""
        return {"optimizer": "adamw", **asdict(self)}


# A practitioner's recipe for the teacher (random-resized crop, flip, RandAugment, label smoothing, 30 epochs);
# against the old one (no augmentation, 20 epochs: 55% on the teacher's val splits) on the teacher's val only.
TEACHER_RECIPE = Recipe(epochs=30, warmup_epochs=2.0, label_smoothing=0.1, random_resized_crop=0.35, hflip=True,
                        randaugment="rand-m7-mstd0.5")


def parse_attack(text: str) -> tuple[str, float]:
    norm, _, step = text.partition(":")
    try:
        if norm in ("l2", "linf") and float(step) > 0:
            return norm, float(step)
    except ValueError:
        pass
    raise argparse.ArgumentTypeError(f"an attack is NORM:STEP with NORM l2 or linf and STEP > 0, e.g. l2:1.1; "
                                     f"got {text!r}")


def parse_grid(text: str) -> tuple[tuple[str, float], ...]:
    return tuple(parse_attack(item) for item in text.split(",") if item)


class Experiment:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.out = Path(args.out).resolve()
        self.store = self.out / "store"
        self.runs, self.sets = self.store / "runs", self.store / "sample-sets"
        self.stages = StageRunner(self.out / "stages", threads=args.threads, store=self.store)
        self.recipe = Recipe(epochs=args.epochs, lr=args.lr, batch_size=args.batch_size)
        self.grid_recipe = replace(self.recipe, epochs=args.grid_epochs)

    # ------------------------------------------------------------------ stages
    def make_splits(self) -> Path:
        """Per-domain train/val/test symlink trees, plus the teacher's (every domain's train and val)."""
        config = {"pacs": str(Path(self.args.pacs).resolve()), "fractions": FRACTIONS, "domains": DOMAINS}
        splits = self.out / f"splits-{config_key('splits', config)}"
        if not (splits / "counts.json").exists():
            counts = {d: materialise_splits(Path(self.args.pacs) / d, splits / d, FRACTIONS) for d in DOMAINS}
            for d in DOMAINS:
                materialise_splits(Path(self.args.pacs) / d, splits / "teacher", FRACTIONS, prefix=f"{d}-")
            (splits / "counts.json").write_text(json.dumps(counts, indent=2))
        return splits

    def train(self, name: str, source: Path, val: Path, objective: str, recipe: Recipe, seed: int,
              arch: str, samples: Path | None = None, extra: dict[str, Any] | None = None,
              overrides: dict[str, Any] | None = None) -> Path:
        """A trainer run (its run folder); `samples` is a sample set made by `generate` (same store)."""
        return self.stages.job(name, "train", {
            "source": str(source), "val": str(val), "preset": "tiny", "student": arch, "objective": objective,
            "seed": seed, "cpus_per_worker": self.args.threads, **recipe.settings(), **(extra or {}),
            "overrides": overrides or {}, "sample_set": samples.name if samples else None}).out

    def model_overrides(self, teacher: Path, vq: Path, attack: tuple[str, float] | None = None) -> dict[str, Any]:
        """The teacher and Q (and the attack) as typed preset overrides, for the generator and the students."""
        s = self.args.image_size
        out = {"image_size": s, "teacher.kind": "timm", "teacher.model": self.args.teacher_arch,
               "teacher.pretrained": str(teacher / "model.pth"), "teacher.image_size": s,
               "discretizer.config": str(vq / "config.yaml"), "discretizer.checkpoint": str(vq / "vq.ckpt"),
               "distill.temperature": self.args.temperature, "distill.alpha": self.args.alpha}
        if attack is not None:
            norm, step = attack
            out |= {"attack.norm": norm, "attack.step_size": step, "attack.epsilon": step,
                    "attack.random_start": self.args.attack_random_start}
        return out

    def generate(self, teacher: Path, vq: Path, photo_train: Path, attack: tuple[str, float],
                 extra: dict[str, Any] | None = None) -> Path:
        """A sample set of photo/train (its folder in the store's sample-sets/)."""
        return self.stages.job("samples", "generate", {
            "source": str(photo_train), "preset": "tiny", "overrides": self.model_overrides(teacher, vq, attack),
            "shard_size": 128, "batch_size": 32, **(extra or {})}).out

    def fit_q(self, splits: Path) -> Path:
        """Q: a VQ model fitted to photo/train, PSNR and codebook use reported on every domain's val split."""
        a, photo_train = self.args, splits / "photo" / "train"
        config = {"source": str(photo_train), "vq_config": a.vq_config, "epochs": a.vq_epochs,
                  "image_size": a.image_size, "lr": a.vq_lr, "codebook_init": "data", "batch_size": a.vq_batch_size}
        if Path(a.vq_config).suffix in (".yaml", ".yml"):
            # A user's file is keyed by what it holds, so editing it refits Q instead of reusing a stale one. A
            # bundled name is code, like the jobs themselves: keys name configurations, not code versions.
            config["vq_params"] = load_taming_config(a.vq_config)
        return self.stages.run("q", self.out, config, lambda out: [
            "services.vq_trainer", "--source", str(photo_train), "--out", str(out), "--vq-config", a.vq_config,
            "--image-size", str(a.image_size), "--epochs", str(a.vq_epochs), "--lr", str(a.vq_lr), "--batch-size",
            str(a.vq_batch_size), "--codebook-init", "data", "--threads", str(a.threads),
            *[f"--eval={d}=" + str(splits / d / "val") for d in DOMAINS]]).out

    def evaluate(self, name: str, run: Path, suites: list[str]) -> Path:
        """An evaluation of a trainer run of this store, with per-image predictions for the paired tests."""
        return self.stages.job(name, "eval", {"model_run": run.name, "suites": suites, "predictions": True}).out

    # ------------------------------------------------------------------ the experiment
    def run(self) -> int:
        """Every stage joins one Ray: --ray-address, or a private local one started here (a Ray start per
        stage would cost ~10 s each, minutes over the experiment)."""
        if self.args.ray_address:
            self.stages.env = {"RAY_ADDRESS": self.args.ray_address}
            return self._run()
        from services.api.local_ray import LocalRay

        ray = LocalRay(num_cpus=os.cpu_count())
        # SIGTERM (kill, a scheduler) unwinds like Ctrl-C, so the private Ray is stopped, not orphaned
        signal.signal(signal.SIGTERM, _interrupt)
        ray.start()
        try:
            self.stages.env = {"RAY_ADDRESS": ray.gcs_address, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": ray.token}
            return self._run()
        finally:
            ray.stop()

    def _run(self) -> int:
        a = self.args
        t_start = time.time()
        self.out.mkdir(parents=True, exist_ok=True)
        splits = self.make_splits()
        photo_train, photo_val = splits / "photo" / "train", splits / "photo" / "val"
        s = a.image_size
        teacher = self.train("teacher", splits / "teacher" / "train", splits / "teacher" / "val", "ce",
                             TEACHER_RECIPE, 0, a.teacher_arch, overrides={"image_size": s})
        vq = self.fit_q(splits)
        if a.until == "q":
            return 0

        grid = []
        for attack in ([a.attack] if a.attack else a.grid):
            samples = self.generate(teacher, vq, photo_train, attack)
            point = {"norm": attack[0], "step_size": attack[1], "samples": str(samples)}
            if not a.attack:  # a short DAD student scored on photo val picks the attack
                run = self.train("grid-dad", photo_train, photo_val, "dad", self.grid_recipe, 0, a.student,
                                 samples=samples, overrides=self.model_overrides(teacher, vq))
                point |= {"run": str(run), "photo_val_top1": last_val_top1(run)}
            grid.append(point)
        chosen = max(grid, key=lambda p: p.get("photo_val_top1", 0.0))  # ties: the earlier (smaller) point
        samples = Path(chosen["samples"])
        print(f"\nattack: {chosen['norm']} step {chosen['step_size']}"
              + (f" (photo val top-1 {chosen['photo_val_top1']:.1%} with a {a.grid_epochs}-epoch DAD student)"
                 if "photo_val_top1" in chosen else " (given)"), flush=True)

        test_suites = [f"{d}=imagefolder:{splits / d / 'test'}" for d in DOMAINS]
        test_suites += [f"{n}=imagefolder:{p}" for n, p in (x.split("=", 1) for x in a.extra_domain)]
        val_suites = [f"{d}=imagefolder:{splits / d / 'val'}" for d in DOMAINS]
        evals = {"teacher": self.evaluate("eval-teacher", teacher, test_suites),
                 "teacher-val": self.evaluate("eval-teacher-val", teacher, val_suites)}
        # Seed by seed, each student evaluated as soon as it is trained: a stopped run leaves whole seeds
        # (re-run with --seeds N to report the first N).
        students: dict[str, tuple[str, int, Path]] = {}
        for seed in range(a.seeds):
            for variant in a.variants.split(","):
                objective, extra = VARIANTS[variant]
                run = self.train(f"{variant}-s{seed}", photo_train, photo_val, objective, self.recipe, seed,
                                 a.student, samples=samples, extra=extra,
                                 overrides=self.model_overrides(teacher, vq))
                students[run.name] = (variant, seed, run)
                evals[run.name] = self.evaluate(f"eval-{run.name}", run, test_suites)

        domains = DOMAINS + tuple(x.split("=", 1)[0] for x in a.extra_domain)
        write_report(self.out, teacher=teacher, vq=vq, samples=samples, grid=grid, students=students, evals=evals,
                     domains=domains, timings=self.stages.timings(), total_s=time.time() - t_start, args=vars(a))
        print(f"\nReport: {self.out / 'report.md'}")
        return 0


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def last_val_top1(run: Path) -> float:
    """The run's photo-val top-1 after its last epoch (metrics.jsonl)."""
    epochs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()
              if '"type": "epoch"' in line or '"type":"epoch"' in line]
    return float(epochs[-1]["val_top1"])


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m experiments.pacs", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pacs", required=True, help="PACS root with photo/, art_painting/, cartoon/ ImageFolders")
    p.add_argument("--out", default="out/pacs", help="experiment folder (default: out/pacs)")
    p.add_argument("--image-size", type=int, default=64, help="pixels (default: 64)")
    p.add_argument("--seeds", type=int, default=3, help="student seeds per variant (default: 3; 1 = quick)")
    p.add_argument("--variants", default=",".join(DEFAULT_VARIANTS),
                   help=f"students to train, of {','.join(VARIANTS)} (default: {','.join(DEFAULT_VARIANTS)})")
    p.add_argument("--attack", type=parse_attack, default=None, metavar="NORM:STEP",
                   help="skip the grid and use this attack, e.g. l2:1.1 (epsilon = step)")
    p.add_argument("--grid", type=parse_grid, default=GRID, metavar="NORM:STEP,...",
                   help="the attack grid (default: " + ",".join(f"{n}:{s:g}" for n, s in GRID) + "; epsilon = step)")
    p.add_argument("--student", default="resnet18", help="timm student (default: resnet18)")
    p.add_argument("--teacher-arch", default="resnet18", help="timm teacher trained on all domains (default: resnet18)")
    p.add_argument("--epochs", type=int, default=12, help="student epochs (default: 12)")
    p.add_argument("--grid-epochs", type=int, default=6, help="epochs of the grid's DAD students (default: 6)")
    p.add_argument("--lr", type=float, default=2e-3, help="students' AdamW peak learning rate (default: 2e-3)")
    p.add_argument("--batch-size", type=int, default=64, help="students' batch (default: 64)")
    p.add_argument("--vq-config", default="pacs-vq", help="taming config of Q (default: pacs-vq)")
    p.add_argument("--vq-epochs", type=int, default=15, help="Q's epochs (default: 15)")
    p.add_argument("--vq-lr", type=float, default=3e-3, help="Q's Adam learning rate, cosine to 0 (default: 3e-3)")
    p.add_argument("--vq-batch-size", type=int, default=8,
                   help="Q's batch (default: 8: on a CPU more, smaller steps fit faster)")
    p.add_argument("--attack-random-start", type=float, default=0.8,
                   help="probability of a random start per sample (App. C: 0.8)")
    p.add_argument("--temperature", type=float, default=4.0, help="KD temperature (App. C: 4)")
    p.add_argument("--alpha", type=float, default=0.5, help="KL weight a (App. C: 0.5)")
    p.add_argument("--extra-domain", action="append", default=[], metavar="NAME=PATH",
                   help="another shifted domain to evaluate (ImageFolder with the same classes), repeatable")
    p.add_argument("--ray-address", default=None,
                   help="a running Ray cluster every stage joins (default: a private local Ray for the experiment)")
    p.add_argument("--threads", type=int, default=2, help="torch threads per process (default: 2)")
    p.add_argument("--until", choices=("q", "all"), default="all", help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    unknown = [v for v in args.variants.split(",") if v not in VARIANTS]
    if unknown:
        raise SystemExit(f"error: --variants: unknown {unknown}; choose from {', '.join(VARIANTS)}")
    return Experiment(args).run()


if __name__ == "__main__":
    raise SystemExit(main())
