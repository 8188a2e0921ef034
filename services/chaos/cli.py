"""Command line of the chaos rehearsal (`make chaos`)."""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Sequence


def build_parser() -> argparse.ArgumentParser:
    from services.chaos.rehearsal import ChaosConfig

    d = ChaosConfig(out=Path("."))
    p = argparse.ArgumentParser(prog="python -m services.chaos", description=(
        "Chaos rehearsal: generate a sample set and train a dad student on a local S3-protocol server, fault-free "
        "and again under seeded faults (actor / driver / Ray Train worker kills, S3 restarts, 503 SlowDown and "
        "connection resets through a loopback proxy, a full disk, SIGKILL of the API server), then check the set and the model are identical. "
        "Writes <out>/report.json and report.md; exit 0 only if every fired fault recovered and nothing differs."))
    p.add_argument("--out", required=True, type=Path, help="run folder (source, logs, report)")
    p.add_argument("--images", type=int, default=d.images, help="source images (default: %(default)s)")
    p.add_argument("--seed", type=int, default=d.seed, help="seeds the data, the fault plan and the proxy")
    p.add_argument("--duration", type=float, default=d.duration_s, dest="duration_s",
                   help="seconds from the start of the rehearsal during which faults may fire (later ones are reported "
                        "as not fired; default: %(default)s)")
    p.add_argument("--generate-faults", type=int, default=d.generate_faults, help="faults during generation")
    p.add_argument("--train-faults", type=int, default=d.train_faults, help="faults during training")
    p.add_argument("--shard-size", type=int, default=d.shard_size)
    p.add_argument("--epochs", type=int, default=d.epochs)
    p.add_argument("--steps-per-epoch", type=int, default=d.steps_per_epoch)
    p.add_argument("--no-disk-full", dest="disk_full", action="store_false", help="skip the full-disk fault")
    p.add_argument("--no-api-kill", dest="api_kill", action="store_false",
                   help="skip the control-plane fault (SIGKILL of the API server with runs in flight and mid-ingest)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    from services.chaos.rehearsal import ChaosConfig, run_rehearsal
    from services.chaos.report import verdict, write_report

    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        cfg = ChaosConfig(**vars(args))
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    report = run_rehearsal(cfg)
    _, md = write_report(report, cfg.out)
    print(md.read_text())
    return 0 if verdict(report)["passed"] else 1
