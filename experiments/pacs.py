"""`python -m experiments.pacs --pacs PATH`: does DAD distil robustness on real images, and which of its parts
does it? (PACS, through the services)

Roles, as in the paper: `photo` is the in-distribution training set (ImageNet's role); `art_painting` and
`cartoon` are natural distribution shifts (ImageNet-R's role) that students never see. No CLIP weights can be
had here, so the teacher is a timm model trained with a practitioner's recipe on all three domains (the paper
shows non-CLIP robust teachers transfer too, Tables 5 and 9), and Q is a VQ model fitted to the teacher's
domains (photo + art_painting + cartoon train; the paper's VQGAN saw data broader than its students').

Declared before any run (README → PACS):
- primary contrasts, on the shift average (art_painting + cartoon test): DAD − KD and DAD − Q(Q(x));
  everything else is secondary;
- the attack and the filter are chosen together on a grid, by the art_painting VAL top-1 of a short DAD
  student (a shift the teacher saw and the students never); never on a test split.

Stages (each a real service run, keyed by a hash of its whole configuration, reused only when that matches):
  splits -> teacher (services.trainer, every domain's train split) -> Q (services.vq_trainer, the teacher's
  domains; a photo-only Q for one secondary comparison)
  -> grid: per attack a sample set of photo/train, and per filter (on: accepted Q(x'); off: every Q(x')) a
     short DAD student scored on art_painting val; the Q(Q(x)) set (attack.steps=0)
  -> mechanism check (no training): teacher-feature Fréchet distances of x, Q(x), Q(Q(x)) and Q(x') to the
     shifted val splits, per grid point
  -> students on photo/train, one recipe and data order: kd, dad, dad-qq (5 seeds), ce and the controls from
     the same recipe (random δ of the attack's norm, the filter flipped, no filter count-matched, Q fitted on
     photo only; 3 seeds)
  -> evaluation on every domain's test split -> report: means over seeds, per contrast a t-interval over
     per-seed differences and a two-level bootstrap, Holm-adjusted p-values.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
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
SHIFTS = ("art_painting", "cartoon")    # the shift average of the primary contrasts (test splits)
SELECTION = "art_painting"               # its VAL split picks the attack and the filter (never a test split)
# The attack grid, declared before any run: single L2 steps (epsilon = step, random start p 0.8) from App. C's
# 0.1 up to about Q's own error (||Q(x) - x||_2 is about 8 per image at 64 px); each point with the filter on
# (Eq. 9: accepted Q(x') only) and off (every Q(x'), as the official code behaves: its filter never fires).
GRID = (("l2", 0.1), ("l2", 1.0), ("l2", 3.0), ("l2", 8.0))
FILTERS = (("on", "accepted"), ("off", "all"))


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


@dataclass(frozen=True)
class Variant:
    """A student: its objective, the sample set its Q(x') rows come from, and which rows (None: the filter the
    grid chose)."""

    objective: str
    label: str
    samples: str = "attack"     # attack (the chosen set) | qq | random-delta | photo-q
    rows: str | None = None     # adversarial_rows, or None for the chosen filter's


VARIANTS = {
    "kd": Variant("kd", "KD on x"),
    "dad": Variant("dad", "DAD: the chosen attack and filter"),
    "dad-qq": Variant("dad", "Q(Q(x)) in place of Q(x') (attack.steps=0: no δ)", samples="qq"),
    "ce": Variant("ce", "CE on labels"),
    "dad-random-delta": Variant("dad", "a random δ of the attack's per-sample norm", samples="random-delta"),
    "dad-filter": Variant("dad", "filter on: accepted Q(x') only", rows="accepted"),
    "dad-no-filter": Variant("dad", "no filter: every Q(x')", rows="all"),
    "dad-no-filter-matched": Variant("dad", "no filter, as many Q(x') per class as the filter keeps",
                                     rows="count-matched"),
    "dad-photo-q": Variant("dad", "Q fitted on photo only", samples="photo-q"),
    "dad-no-attack": Variant("dad", "stored Q(x), filtered (δ and the second pass through Q both off)",
                             rows="discretized"),
    "dat": Variant("dat", "DAT: the student's own attack"),
}
PRIMARY_VARIANTS = ("kd", "dad", "dad-qq")  # --seeds each; the rest --control-seeds
DEFAULT_VARIANTS = ("kd", "dad", "dad-qq", "ce", "dad-random-delta", "dad-filter", "dad-no-filter",
                    "dad-no-filter-matched", "dad-photo-q")  # the one of dad-filter / dad-no-filter dad is, is skipped

# --quick: a try of the whole pipeline in about 45 min on 2 cores (numbers from it are not the experiment's).
# Measured with epochs 6: 51.5 min, its first 20 with other jobs on the cores (~46 quiet); epochs 5 saves ~3.
QUICK = {"teacher_epochs": 8, "vq_epochs": 2, "grid": "l2:0.1,l2:3", "grid_epochs": 3, "epochs": 5, "seeds": 2,
         "control_seeds": 1}


class Experiment:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.out = Path(args.out).resolve()
        self.store = self.out / "store"
        self.runs, self.sets = self.store / "runs", self.store / "sample-sets"
        self.stages = StageRunner(self.out / "stages", threads=args.threads, store=self.store)
        self.recipe = Recipe(epochs=args.epochs, lr=args.lr, batch_size=args.batch_size)
        self.grid_recipe = replace(self.recipe, epochs=args.grid_epochs)
        self.teacher_recipe = replace(TEACHER_RECIPE, epochs=args.teacher_epochs)

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

    def generate(self, name: str, teacher: Path, vq: Path, photo_train: Path, attack: tuple[str, float],
                 attack_overrides: dict[str, Any] | None = None, extra: dict[str, Any] | None = None) -> Path:
        """A sample set of photo/train (its folder in the store's sample-sets/); `attack_overrides` makes a
        control's set on the same code path (attack.steps=0: Q(Q(x)); attack.delta=random: random δ), `extra`
        sets generator settings (e.g. stored views)."""
        return self.stages.job(name, "generate", {
            "source": str(photo_train), "preset": "tiny",
            "overrides": self.model_overrides(teacher, vq, attack) | (attack_overrides or {}),
            "shard_size": 128, "batch_size": 32, **(extra or {})}).out

    def fit_q(self, splits: Path, domains: str) -> Path:
        """Q fitted to the train split of `domains` ("teacher": all three; "photo"), PSNR and codebook use
        reported on every domain's val split. The photo-only Q takes as many steps as the three-domain one."""
        a = self.args
        source = splits / domains / "train"
        epochs = a.vq_epochs
        if domains == "photo":
            counts = json.loads((splits / "counts.json").read_text())
            epochs = max(1, round(a.vq_epochs * sum(counts[d]["train"] for d in DOMAINS) / counts["photo"]["train"]))
        config = {"source": str(source), "vq_config": a.vq_config, "epochs": epochs, "image_size": a.image_size,
                  "lr": a.vq_lr, "codebook_init": "data", "batch_size": a.vq_batch_size}
        if Path(a.vq_config).suffix in (".yaml", ".yml"):
            # A user's file is keyed by what it holds, so editing it refits Q instead of reusing a stale one. A
            # bundled name is code, like the jobs themselves: keys name configurations, not code versions.
            config["vq_params"] = load_taming_config(a.vq_config)
        return self.stages.run("q" if domains == "teacher" else f"q-{domains}", self.out, config, lambda out: [
            "services.vq_trainer", "--source", str(source), "--out", str(out), "--vq-config", a.vq_config,
            "--image-size", str(a.image_size), "--epochs", str(epochs), "--lr", str(a.vq_lr), "--batch-size",
            str(a.vq_batch_size), "--codebook-init", "data", "--threads", str(a.threads),
            *[f"--eval={d}=" + str(splits / d / "val") for d in DOMAINS]]).out

    def evaluate(self, name: str, run: Path, suites: list[str]) -> Path:
        """An evaluation of a trainer run of this store, with per-image predictions for the paired tests."""
        return self.stages.job(name, "eval", {"model_run": run.name, "suites": suites, "predictions": True}).out

    def mechanism(self, teacher: Path, splits: Path, clean_set: Path, qq_set: Path,
                  grid_sets: dict[str, Path]) -> dict:
        """The mechanism check (experiments.mechanism), cached by the sets it reads."""
        from experiments.mechanism import FeatureExtractor, class_names_of, mechanism_check

        targets = {d: splits / d / "val" for d in (*SHIFTS, "photo")}
        config = {"teacher": teacher.name, "clean": clean_set.name, "qq": qq_set.name,
                  "grid": {k: v.name for k, v in grid_sets.items()}, "targets": {k: str(v) for k, v in targets.items()}}
        path = self.out / "stages" / f"mechanism-{config_key('mechanism', config)}.json"
        if path.exists():
            self.stages.log(f"[reuse] mechanism check: {path}")
            return json.loads(path.read_text())
        self.stages.log("\n=== mechanism check: teacher-feature Fréchet distances to the val splits")
        import torch

        torch.set_num_threads(self.args.threads)
        t0 = time.time()
        extract = FeatureExtractor(self.args.teacher_arch, teacher / "model.pth", class_names_of(clean_set),
                                   self.args.image_size)
        result = mechanism_check(extract, targets, self.args.image_size, clean_set, qq_set, grid_sets)
        result["seconds"] = round(time.time() - t0, 1)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(result, indent=2))
        return result

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
        photo_train, selection_val = splits / "photo" / "train", splits / SELECTION / "val"
        teacher = self.train("teacher", splits / "teacher" / "train", splits / "teacher" / "val", "ce",
                             self.teacher_recipe, 0, a.teacher_arch, overrides={"image_size": a.image_size})
        vq = self.fit_q(splits, "teacher")
        variants = [v for v in a.variants.split(",") if v]
        vq_photo = self.fit_q(splits, "photo") if "dad-photo-q" in variants else None
        if a.until == "q":
            return 0

        # The grid: per attack one sample set, per filter one short DAD student scored on art_painting val.
        grid, grid_sets = [], {}
        for attack in ([a.attack] if a.attack else a.grid):
            samples = self.generate("samples", teacher, vq, photo_train, attack)
            grid_sets[f"{attack[0]}:{attack[1]:g}"] = samples
            for filter_name, rows in (FILTERS if not a.attack else ((a.filter, dict(FILTERS)[a.filter]),)):
                point = {"norm": attack[0], "step_size": attack[1], "filter": filter_name, "rows": rows,
                         "samples": str(samples)}
                if not a.attack:
                    run = self.train(f"grid-dad-{filter_name}", photo_train, selection_val, "dad", self.grid_recipe,
                                     0, a.student, samples=samples, extra={"adversarial_rows": rows},
                                     overrides=self.model_overrides(teacher, vq))
                    point |= {"run": str(run), "selection_val_top1": last_val_top1(run)}
                grid.append(point)
        # ties: the earlier point (smaller step; filter on, as the paper says, before off)
        chosen = max(grid, key=lambda p: p.get("selection_val_top1", 0.0))
        attack, rows = (chosen["norm"], chosen["step_size"]), chosen["rows"]
        samples = Path(chosen["samples"])
        print(f"\nattack: {attack[0]} step {attack[1]:g}, filter {chosen['filter']}"
              + (f" ({SELECTION} val top-1 {chosen['selection_val_top1']:.1%} with a {a.grid_epochs}-epoch DAD "
                 "student)" if "selection_val_top1" in chosen else " (given)"), flush=True)

        # The controls' sets: same source, teacher, Q and code path; one setting differs.
        sets = {"attack": samples,
                "qq": self.generate("samples-qq", teacher, vq, photo_train, attack, {"attack.steps": 0})}
        mechanism = self.mechanism(teacher, splits, samples, sets["qq"], grid_sets) if not a.no_mechanism else None
        if "dad-random-delta" in variants:
            sets["random-delta"] = self.generate("samples-random-delta", teacher, vq, photo_train, attack,
                                                 {"attack.delta": "random"})
        if vq_photo is not None:
            sets["photo-q"] = self.generate("samples-photo-q", teacher, vq_photo, photo_train, attack)

        test_suites = [f"{d}=imagefolder:{splits / d / 'test'}" for d in DOMAINS]
        test_suites += [f"{n}=imagefolder:{p}" for n, p in (x.split("=", 1) for x in a.extra_domain)]
        val_suites = [f"{d}=imagefolder:{splits / d / 'val'}" for d in DOMAINS]
        evals = {"teacher": self.evaluate("eval-teacher", teacher, test_suites),
                 "teacher-val": self.evaluate("eval-teacher-val", teacher, val_suites)}
        # Seed by seed, each student evaluated as soon as it is trained: a stopped run leaves whole seeds.
        students: dict[str, tuple[str, int, Path]] = {}
        skipped = [v for v in variants if v in ("dad-filter", "dad-no-filter") and VARIANTS[v].rows == rows]
        for seed in range(max(a.seeds, a.control_seeds)):
            for variant in variants:
                if variant in skipped or seed >= (a.seeds if variant in PRIMARY_VARIANTS else a.control_seeds):
                    continue
                spec = VARIANTS[variant]
                vq_of = vq_photo if spec.samples == "photo-q" else vq
                extra = {"adversarial_rows": spec.rows or rows} if spec.objective == "dad" else {}
                run = self.train(f"{variant}-s{seed}", photo_train, splits / "photo" / "val", spec.objective,
                                 self.recipe, seed, a.student, samples=sets[spec.samples], extra=extra,
                                 overrides=self.model_overrides(teacher, vq_of))
                students[run.name] = (variant, seed, run)
                evals[run.name] = self.evaluate(f"eval-{run.name}", run, test_suites)

        domains = DOMAINS + tuple(x.split("=", 1)[0] for x in a.extra_domain)
        write_report(self.out, teacher=teacher, vqs={"teacher domains": vq, "photo only": vq_photo},
                     sets=sets, chosen=chosen, grid=grid, mechanism=mechanism, students=students, evals=evals,
                     domains=domains, skipped=skipped, timings=self.stages.timings(),
                     total_s=time.time() - t_start, args=vars(a))
        print(f"\nReport: {self.out / 'report.md'}")
        return 0


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def last_val_top1(run: Path) -> float:
    """The run's top-1 on its val split after its last epoch (metrics.jsonl)."""
    epochs = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()
              if '"type": "epoch"' in line or '"type":"epoch"' in line]
    return float(epochs[-1]["val_top1"])


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m experiments.pacs", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pacs", required=True, help="PACS root with photo/, art_painting/, cartoon/ ImageFolders")
    p.add_argument("--out", default="out/pacs", help="experiment folder (default: out/pacs)")
    p.add_argument("--quick", action="store_true",
                   help="a try of the whole pipeline in about 45 min on 2 cores: " + ", ".join(
                       f"--{k.replace('_', '-')} {v}" for k, v in QUICK.items()) + " (flags given explicitly win)")
    p.add_argument("--image-size", type=int, default=64, help="pixels (default: 64)")
    p.add_argument("--seeds", type=int, default=5,
                   help=f"seeds of the primary contrasts' students ({', '.join(PRIMARY_VARIANTS)}; default: 5)")
    p.add_argument("--control-seeds", type=int, default=3, help="seeds of every other student (default: 3)")
    p.add_argument("--variants", default=",".join(DEFAULT_VARIANTS),
                   help=f"students to train, of {','.join(VARIANTS)} (default: {','.join(DEFAULT_VARIANTS)}; "
                        "of dad-filter and dad-no-filter, the one DAD's chosen filter makes is skipped)")
    p.add_argument("--attack", type=parse_attack, default=None, metavar="NORM:STEP",
                   help="skip the grid and use this attack, e.g. l2:3 (epsilon = step), with --filter")
    p.add_argument("--filter", choices=[f for f, _ in FILTERS], default="on",
                   help="with --attack: the teacher-correct filter on (Eq. 9) or off (default: on)")
    p.add_argument("--grid", type=parse_grid, default=GRID, metavar="NORM:STEP,...",
                   help="the attack grid (default: " + ",".join(f"{n}:{s:g}" for n, s in GRID)
                        + "; epsilon = step), each point with the filter on and off")
    p.add_argument("--student", default="resnet18", help="timm student (default: resnet18)")
    p.add_argument("--teacher-arch", default="resnet18", help="timm teacher trained on all domains (default: resnet18)")
    p.add_argument("--teacher-epochs", type=int, default=TEACHER_RECIPE.epochs,
                   help=f"the teacher's epochs (default: {TEACHER_RECIPE.epochs})")
    p.add_argument("--epochs", type=int, default=10, help="student epochs (default: 10)")
    p.add_argument("--grid-epochs", type=int, default=5, help="epochs of the grid's DAD students (default: 5)")
    p.add_argument("--lr", type=float, default=2e-3, help="students' AdamW peak learning rate (default: 2e-3)")
    p.add_argument("--batch-size", type=int, default=64, help="students' batch (default: 64)")
    p.add_argument("--vq-config", default="pacs-vq", help="taming config of Q (default: pacs-vq)")
    p.add_argument("--vq-epochs", type=int, default=5,
                   help="Q's epochs on the three domains (default: 5; the photo-only Q takes as many steps)")
    p.add_argument("--vq-lr", type=float, default=3e-3, help="Q's Adam learning rate, cosine to 0 (default: 3e-3)")
    p.add_argument("--vq-batch-size", type=int, default=8,
                   help="Q's batch (default: 8: on a CPU more, smaller steps fit faster)")
    p.add_argument("--attack-random-start", type=float, default=0.8,
                   help="probability of a random start per sample (App. C: 0.8)")
    p.add_argument("--temperature", type=float, default=4.0, help="KD temperature (App. C: 4)")
    p.add_argument("--alpha", type=float, default=0.5, help="KL weight a (App. C: 0.5)")
    p.add_argument("--extra-domain", action="append", default=[], metavar="NAME=PATH",
                   help="another shifted domain to evaluate (ImageFolder with the same classes), repeatable; "
                        "reported in every table, outside the shift average")
    p.add_argument("--no-mechanism", action="store_true", help="skip the Fréchet-distance mechanism check")
    p.add_argument("--ray-address", default=None,
                   help="a running Ray cluster every stage joins (default: a private local Ray for the experiment)")
    p.add_argument("--threads", type=int, default=2, help="torch threads per process (default: 2)")
    p.add_argument("--until", choices=("q", "all"), default="all", help=argparse.SUPPRESS)
    return p


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The arguments, with --quick's values for every flag not given explicitly."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.quick:
        given = set(argv if argv is not None else sys.argv[1:])
        for key, value in QUICK.items():
            flag = "--" + key.replace("_", "-")
            if not any(g == flag or g.startswith(flag + "=") for g in given):
                setattr(args, key, parse_grid(value) if key == "grid" else value)
    unknown = [v for v in args.variants.split(",") if v and v not in VARIANTS]
    if unknown:
        parser.error(f"--variants: unknown {unknown}; choose from {', '.join(VARIANTS)}")
    return args


def main(argv: list[str] | None = None) -> int:
    return Experiment(parse_args(argv)).run()


if __name__ == "__main__":
    raise SystemExit(main())
