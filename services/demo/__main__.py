"""`python -m services.demo`: the whole pipeline on a laptop, in one command, in a few minutes on a CPU.

synthetic source -> generator (tiny CLIP + tiny VQ, local Ray) -> sample store (local Parquet) ->
trainer (ce and dad students) -> evaluator (in-distribution `photo` and shifted `sketch`) -> table ->
catalog (SQLite), ready for `python -m services.api --store <out>/store`.

The models are random-init `tiny` ones, so the accuracies only show that everything runs end to end; use
`--preset paper` with real weights (see README) for numbers that mean something.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

from services.api.store import Store, record_finished_run
from services.demo.synthetic import make_dataset


def run(stage: str, *args: str) -> float:
    """Run one service as its own process (as `ray job submit` would) and return its wall time."""
    cmd = [sys.executable, "-m", *args]
    print(f"\n=== {stage}: python -m {' '.join(args)}", flush=True)
    t0 = time.time()
    subprocess.run(cmd, check=True)
    return time.time() - t0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m services.demo", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="out/demo", help="folder for data, sample store, runs and catalog (default: out/demo)")
    p.add_argument("--per-class", type=int, default=24, help="synthetic images per class and domain (default: 24)")
    p.add_argument("--epochs", type=int, default=3, help="student epochs (default: 3)")
    p.add_argument("--objectives", default="ce,dad", help="comma-separated student objectives (default: ce,dad)")
    args = p.parse_args(argv)

    out = Path(args.out).resolve()
    data = make_dataset(out / "data", per_class=args.per_class, size=32)
    store = Store(str(out / "store"))
    times, records = {}, []

    def stage(name: str, run_id: str, kind: str, *cmd: str, set_id: str | None = None) -> None:
        times[name] = run(name, *cmd)
        records.append((run_id, kind, ["python", "-m", *cmd], set_id))

    set_id = "demo-photo"
    stage("generate", "demo-generate", "generate", "services.generator", "--source", str(data["photo/train"]),
          "--out", store.sample_sets_uri(), "--name", set_id, "--preset", "tiny", "--shard-size", "32",
          set_id=set_id)
    manifest = f"{store.set_uri(set_id)}/manifest.json"
    trained = []
    for objective in args.objectives.split(","):
        run_id = f"demo-{objective.replace('+', '-')}"
        stage(f"train {objective}", run_id, "train", "services.trainer", "--source", str(data["photo/train"]),
              "--samples", manifest, "--preset", "tiny", "--objective", objective, "--out", store.run_uri(run_id),
              "--epochs", str(args.epochs), "--batch-size", "16", "--optimizer", "adamw", "--lr", "2e-3",
              "--warmup-epochs", "0", "--val", str(data["photo/test"]), "--cpus-per-worker", "0.5", "--no-progress",
              set_id=set_id)
        trained.append(run_id)
    suites = f"photo=imagefolder:{data['photo/test']},sketch=imagefolder:{data['sketch/test']}"
    for run_id in trained:
        stage(f"evaluate {run_id}", f"eval-{run_id}", "eval", "services.evaluator", "--model", store.run_uri(run_id),
              "--suites", suites, "--out", store.run_uri(f"eval-{run_id}"), "--name", run_id)
    for run_id, kind, entrypoint, sid in records:
        record_finished_run(store, run_id, kind, entrypoint, {"demo": True}, sample_set_id=sid,
                            message="made by services.demo")
    database = f"sqlite:///{out / 'catalog.db'}"
    run("catalog", "services.api.catalog", "rebuild", "--store", store.uri, "--database", database)
    run("table", "services.evaluator", "table", *[store.run_uri(f"eval-{r}") for r in trained],
        "--out", str(out / "results.md"))
    print("\n=== wall time per stage")
    for name, seconds in times.items():
        print(f"  {name:<24} {seconds:6.1f} s")
    print(f"\nResults table: {out / 'results.md'}")
    print(f"Browse:        DAD_AUTH_TOKEN=$(openssl rand -hex 16) python -m services.api --store {store.uri} "
          f"--database {database}   # then open http://127.0.0.1:8000/ui/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
