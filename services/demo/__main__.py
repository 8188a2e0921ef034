"""`python -m services.demo`: the method end to end on a laptop, in one command, in about 3 minutes on a CPU.

synthetic shapes (photo | sketch) -> fit Q (services.vq_trainer, photo only) -> train the teacher
(services.trainer, ce on photo and sketch: the stand-in for CLIP's broad training) -> generator (Q and the
teacher, local Ray) -> sample store -> students `ce` and `dad` on photo only (services.trainer) ->
evaluator (in-distribution `photo`, unseen `sketch`) -> table -> catalog (<store>/catalog.db).

The jobs are the control plane's: each stage's command line is built from a REST run config
(`services.api.entrypoints`), and the store records that config, the command and its start and finish times,
so `python -m services.api --store <out>/store` shows the runs as if they had been submitted over REST.
"""
from __future__ import annotations

import argparse
import shlex
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

from schemas.api import JOB_KINDS
from services.api.entrypoints import build_job
from services.api.launch import record_final_state, start_job
from services.api.launcher import LocalProcessLauncher
from services.api.store import Store
from services.demo.synthetic import make_dataset, merge_domains

SET_ID = "demo-photo"
TEACHER = "demo-teacher"


class Demo:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.out = Path(args.out).resolve()
        self.store = Store(str(self.out / "store"))
        self.times: dict[str, float] = {}
        self.launcher = LocalProcessLauncher()

    def command(self, stage: str, argv: list[str]) -> tuple[datetime, datetime]:
        """Run one service as its own process (as a Ray job would); returns its start and finish times."""
        print(f"\n=== {stage}: {shlex.join(['python', *argv[1:]])}", flush=True)
        started, t0 = datetime.now(timezone.utc), time.time()
        subprocess.run(argv, check=True)
        self.times[stage] = time.time() - t0
        return started, datetime.now(timezone.utc)

    def job(self, stage: str, run_id: str, kind: str, config: dict) -> None:
        """Run a generate / train / eval job through the control plane's own path (services.api.launch), on a
        local-process launcher instead of Ray's job server; the store records it like a submitted run."""
        typed = JOB_KINDS[kind].run_config.model_validate(config)
        spec = build_job(kind, run_id, typed, self.store, sys.executable)
        print(f"\n=== {stage}: {shlex.join(['python', *spec.argv[1:]])}", flush=True)
        t0 = time.time()
        start_job(self.store, self.launcher, kind, run_id, typed, sys.executable, job=spec)
        self.times[stage] = time.time() - t0
        status = record_final_state(self.store, self.launcher, run_id)
        if status is None or status.status != "SUCCEEDED":
            raise SystemExit(f"{stage} failed ({status.message if status else 'no status'}); "
                             f"its run record: {self.store.run_record_uri(run_id)}")

    def run(self) -> int:
        a, out = self.args, self.out
        t_start = time.time()
        data = make_dataset(out / "data", per_class=a.per_class, size=32)
        both = merge_domains(data, out / "data" / "photo+sketch")
        vq = out / "vq"
        self.command("fit Q", [sys.executable, "-m", "services.vq_trainer",
                               *fit_q_args(data["photo/train"], vq, a.vq_epochs),
                               "--eval", f"photo={data['photo/test']}", "--eval", f"sketch={data['sketch/test']}"])
        train = {"preset": "tiny", "batch_size": 16, "optimizer": "adamw", "lr": 3e-3, "warmup_epochs": 0,
                 "cpus_per_worker": 0.5, "loader_workers": 0, "log_every": 2}
        self.job("train the teacher", TEACHER, "train", {
            **train, "source": str(both["train"]), "val": str(both["test"]), "objective": "ce",
            "student": a.teacher_arch, "epochs": a.teacher_epochs})
        models = {"teacher.kind": "timm", "teacher.model": a.teacher_arch, "teacher.image_size": 32,
                  "teacher.pretrained": str(Path(self.store.run_path(TEACHER)) / "model.pth"),
                  "discretizer.config": str(vq / "config.yaml"), "discretizer.checkpoint": str(vq / "vq.ckpt")}
        self.job("generate", "demo-generate", "generate", {
            "source": str(data["photo/train"]), "preset": "tiny", "overrides": models, "set_name": SET_ID,
            "shard_size": 32, "cpus_per_actor": 0.5})
        students = []
        for objective in a.objectives.split(","):
            run_id = f"demo-{objective.replace('+', '-')}"
            self.job(f"train {objective}", run_id, "train", {
                **train, "source": str(data["photo/train"]), "val": str(data["photo/test"]), "sample_set": SET_ID,
                "objective": objective, "overrides": models, "epochs": a.epochs})
            students.append(run_id)
        suites = [f"photo=imagefolder:{data['photo/test']}", f"sketch=imagefolder:{data['sketch/test']}"]
        for run_id in [TEACHER, *students]:
            self.job(f"evaluate {run_id}", f"eval-{run_id}", "eval", {"model_run": run_id, "suites": suites})
        self.command("catalog", [sys.executable, "-m", "services.api.catalog", "rebuild", "--store", self.store.uri])
        self.command("table", [sys.executable, "-m", "services.evaluator", "table",
                               *[self.store.run_uri(f"eval-{r}") for r in [TEACHER, *students]],
                               "--out", str(out / "results.md")])
        print("\n=== wall time per stage")
        for name, seconds in self.times.items():
            print(f"  {name:<24} {seconds:6.1f} s")
        print(f"  {'total':<24} {time.time() - t_start:6.1f} s")
        print(f"\nResults table: {out / 'results.md'}\n\n{(out / 'results.md').read_text().split(chr(10) + chr(10))[0]}")
        print("\nBrowse the sample set, the runs and the results (README \"Control plane\"):\n"
              '  export DAD_AUTH_TOKEN=$(python -c "import secrets; print(secrets.token_hex(16))")\n'
              f"  make serve STORE={_shown(out / 'store')}        # then open http://127.0.0.1:8000/ui/")
        return 0


def fit_q_args(source: Path, out: Path, epochs: int) -> list[str]:
    """services.vq_trainer's arguments for the demo's Q: the small f=2 `demo-vq` config (tiny-vq's f=4 learns
    only the mean image in a minute), Adam at 5e-3, codes started on the data, one thread (two threads crawl
    when another process holds a core; alone on 2 idle cores one thread is ~1.5x slower)."""
    return ["--source", str(source), "--out", str(out), "--vq-config", "demo-vq", "--image-size", "32",
            "--epochs", str(epochs), "--batch-size", "8", "--lr", "5e-3", "--codebook-init", "data", "--threads", "1"]


def _shown(path: Path) -> str:
    """The path as the user typed it when it is below the working directory (out/demo/store)."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m services.demo", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="out/demo", help="folder for data, Q, sample store, runs and catalog (default: out/demo)")
    p.add_argument("--per-class", type=int, default=24, help="synthetic images per class and domain (default: 24)")
    p.add_argument("--epochs", type=int, default=8, help="student epochs (default: 8)")
    p.add_argument("--teacher-epochs", type=int, default=15, help="teacher epochs (default: 15)")
    p.add_argument("--vq-epochs", type=int, default=50, help="epochs fitting Q (default: 50, 450 steps)")
    p.add_argument("--teacher-arch", default="test_resnet", help="timm teacher architecture (default: test_resnet)")
    p.add_argument("--objectives", default="ce,dad", help="comma-separated student objectives (default: ce,dad)")
    args = p.parse_args(argv)
    return Demo(args).run()


if __name__ == "__main__":
    raise SystemExit(main())
