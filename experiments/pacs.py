"""`python -m experiments.pacs --pacs PATH`: distil robustness on real images (PACS) through the services.

Roles, as in the paper: `photo` is the in-distribution training set (ImageNet's role); `art_painting` and
`cartoon` are natural distribution shifts (ImageNet-R's role) that students never see. No CLIP weights can be
had here, so the teacher is a timm model trained on all three domains (the paper shows non-CLIP robust
teachers transfer too, Tables 5 and 9), and Q is a small VQ model fitted to photo only (like the paper's
ImageNet VQGAN).

Stages (each a real service run; a finished stage is skipped on re-run):
  splits -> teacher (services.trainer, ce on all domains) -> vq (services.vq_trainer, photo only)
  -> generate (services.generator on photo/train) -> students (services.trainer, photo/train, per objective
  and seed) -> evaluate (services.evaluator, imagefolder: suites on each domain's test split) -> report.

Hyper-parameters are chosen on held-out val splits (photo for students, all domains for the teacher), never
on a reported test split. Extra shifted domains (e.g. PACS sketch) plug in with --extra-domain NAME=PATH.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from experiments.splits import materialise_splits
from experiments.report import write_report

DOMAINS = ("photo", "art_painting", "cartoon")
FRACTIONS = {"train": 0.7, "val": 0.1, "test": 0.2}


class Experiment:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.out = Path(args.out).resolve()
        self.store = self.out / "store"
        self.splits = self.out / "splits"
        self.timings_path = self.out / "timings.json"
        self.timings = json.loads(self.timings_path.read_text()) if self.timings_path.exists() else {}

    # ------------------------------------------------------------------ helpers
    def stage(self, name: str, done: Path, *cmd: str) -> None:
        """Run one service as its own process unless its output exists; record its wall time."""
        if done.exists():
            print(f"[skip] {name}: {done} exists", flush=True)
            return
        print(f"\n=== {name}\n    {' '.join(cmd)}", flush=True)
        t0 = time.time()
        env = {**os.environ, "HF_HUB_OFFLINE": "1"}
        subprocess.run([sys.executable, "-m", *cmd], check=True, env=env)
        self.timings[name] = round(time.time() - t0, 1)
        self.timings_path.write_text(json.dumps(self.timings, indent=2))

    def model_overrides(self) -> list[str]:
        """The teacher (a trained timm model) and Q (the fitted VQ model), as preset overrides."""
        s, t, q = self.args.image_size, self.store / "runs" / "pacs-teacher", self.out / "vq"
        sets = [f"image_size={s}", "teacher.kind=timm", f"teacher.model={self.args.teacher_arch}",
                f"teacher.pretrained={t / 'model.pth'}", f"teacher.image_size={s}",
                f"discretizer.config={q / 'config.yaml'}", f"discretizer.checkpoint={q / 'vq.ckpt'}",
                f"attack.step_size={self.args.attack_step_size}", f"attack.norm={self.args.attack_norm}",
                f"attack.epsilon={self.args.attack_epsilon}", f"attack.random_start={self.args.attack_random_start}",
                f"distill.temperature={self.args.temperature}",
                f"distill.alpha={self.args.alpha}"]
        return [x for item in sets for x in ("--set", item)]

    def train(self, run_id: str, source: Path, objective: str, epochs: int, seed: int, val: Path,
              samples: Path | None = None, arch: str | None = None, sets: list[str] = ()) -> Path:
        run_dir = self.store / "runs" / run_id
        cmd = ["services.trainer", "--source", str(source), "--out", str(run_dir), "--preset", "tiny",
               "--student", arch or self.args.student, "--objective", objective, "--epochs", str(epochs),
               "--batch-size", str(self.args.batch_size), "--optimizer", "adamw", "--lr", str(self.args.lr),
               "--warmup-epochs", "1", "--seed", str(seed), "--val", str(val), "--no-progress",
               *sets]
        if samples is not None:
            cmd += ["--samples", str(samples)]
        self.stage(f"train {run_id}", run_dir / "model.pth", *cmd)
        return run_dir

    # ------------------------------------------------------------------ stages
    def make_splits(self) -> None:
        marker = self.splits / "counts.json"
        if marker.exists():
            return
        counts = {}
        for d in DOMAINS:
            counts[d] = materialise_splits(Path(self.args.pacs) / d, self.splits / d, FRACTIONS)
            # The teacher's training data: every domain's train split (and val split for model selection).
            materialise_splits(Path(self.args.pacs) / d, self.splits / "teacher", FRACTIONS, prefix=f"{d}-")
        marker.write_text(json.dumps(counts, indent=2))

    def run(self) -> int:
        a = self.args
        self.out.mkdir(parents=True, exist_ok=True)
        t_start = time.time()
        self.make_splits()
        s = a.image_size
        self.train("pacs-teacher", self.splits / "teacher" / "train", "ce", a.teacher_epochs, 0,
                   self.splits / "teacher" / "val", arch=a.teacher_arch, sets=["--set", f"image_size={s}"])
        self.stage("vq", self.out / "vq" / "report.json", "services.vq_trainer",
                   "--source", str(self.splits / "photo" / "train"), "--out", str(self.out / "vq"),
                   "--config", a.vq_config, "--image-size", str(s), "--epochs", str(a.vq_epochs),
                   "--batch-size", "32", "--threads", str(a.threads),
                   *(["--limit", str(a.vq_limit)] if a.vq_limit else []),
                   *[f"--eval={d}=" + str(self.splits / d / "val") for d in DOMAINS])
        set_dir = self.store / "sample-sets" / "pacs-photo"
        self.stage("generate", set_dir / "manifest.json", "services.generator",
                   "--source", str(self.splits / "photo" / "train"), "--out", str(self.store / "sample-sets"),
                   "--name", "pacs-photo", "--preset", "tiny", *self.model_overrides(),
                   "--shard-size", "128", "--batch-size", "32", "--no-progress")
        runs = {}
        for objective in a.objectives.split(","):
            for seed in range(a.seeds):
                run_id = f"pacs-{objective.replace('+', '-')}-s{seed}"
                runs[run_id] = (objective, seed)
                self.train(run_id, self.splits / "photo" / "train", objective, a.epochs, seed,
                           self.splits / "photo" / "val", samples=set_dir / "manifest.json",
                           sets=self.model_overrides())
        suites = [f"{d}=imagefolder:{self.splits / d / 'test'}" for d in DOMAINS]
        suites += [f"{name}=imagefolder:{path}" for name, path in (x.split("=", 1) for x in a.extra_domain)]
        for run_id in ["pacs-teacher", *runs]:
            eval_dir = self.store / "runs" / f"eval-{run_id}"
            self.stage(f"evaluate {run_id}", eval_dir / "results.md", "services.evaluator",
                       "--model", str(self.store / "runs" / run_id), "--suites", ",".join(suites),
                       "--out", str(eval_dir), "--name", run_id)
        self.timings["total (this invocation)"] = round(time.time() - t_start, 1)
        write_report(self.out, runs, DOMAINS + tuple(n.split("=", 1)[0] for n in a.extra_domain), self.timings)
        print(f"\nReport: {self.out / 'report.md'}")
        return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m experiments.pacs", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pacs", required=True, help="PACS root with photo/, art_painting/, cartoon/ ImageFolders")
    p.add_argument("--out", default="out/pacs", help="experiment folder (default: out/pacs)")
    p.add_argument("--image-size", type=int, default=64, help="pixels (default: 64)")
    p.add_argument("--seeds", type=int, default=1, help="student seeds per objective (default: 1; 3 on a GPU)")
    p.add_argument("--objectives", default="ce,kd,dat,dad", help="student objectives (default: ce,kd,dat,dad)")
    p.add_argument("--student", default="resnet18", help="timm student (default: resnet18)")
    p.add_argument("--teacher-arch", default="resnet18", help="timm teacher trained on all domains (default: resnet18)")
    p.add_argument("--epochs", type=int, default=12, help="student epochs (default: 12)")
    p.add_argument("--teacher-epochs", type=int, default=20, help="teacher epochs (default: 20)")
    p.add_argument("--vq-config", default="tiny-vq", help="taming config of Q (default: tiny-vq)")
    p.add_argument("--vq-epochs", type=int, default=15, help="VQ epochs (default: 15)")
    p.add_argument("--vq-limit", type=int, default=None, help="fit Q on at most N photo images (default: all)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=2e-3, help="AdamW peak learning rate (default: 2e-3)")
    p.add_argument("--attack-step-size", type=float, default=0.1, help="attack lr (App. C: 0.1)")
    p.add_argument("--attack-norm", choices=("l2", "linf"), default="l2",
                   help="l2: App. C's (DAT's) L2-normalised step and L2 ball; linf: sign step, box (default: l2)")
    p.add_argument("--attack-epsilon", type=float, default=0.1, help="radius of the attack's ball (App. C: 0.1)")
    p.add_argument("--attack-random-start", type=float, default=0.8,
                   help="probability of a random start per sample (App. C: 0.8)")
    p.add_argument("--temperature", type=float, default=4.0, help="KD temperature (App. C: 4)")
    p.add_argument("--alpha", type=float, default=0.5, help="KL weight a (App. C: 0.5)")
    p.add_argument("--extra-domain", action="append", default=[], metavar="NAME=PATH",
                   help="another shifted domain to evaluate (ImageFolder with the same classes), repeatable")
    p.add_argument("--threads", type=int, default=2, help="torch threads per process (default: 2)")
    return p


def main(argv: list[str] | None = None) -> int:
    return Experiment(build_parser().parse_args(argv)).run()


if __name__ == "__main__":
    raise SystemExit(main())
