"""What every benchmark CLI shares: the --threads/--json options, the machine line, and the JSON it writes."""
from __future__ import annotations

import argparse
import json
import os
import platform
from pathlib import Path

import torch


def add_output_args(p: argparse.ArgumentParser, json_default: str | None = None,
                    threads_help: str = "torch CPU threads (default: torch's)") -> None:
    p.add_argument("--threads", type=int, default=None, help=threads_help)
    p.add_argument("--json", default=json_default, metavar="PATH",
                   help="write the numbers to this JSON file" + (" (default: %(default)s)" if json_default else ""))


def machine(device: str | torch.device) -> str:
    """The device the numbers belong to: GPU name, or CPU cores and model."""
    if torch.device(device).type == "cuda":
        return torch.cuda.get_device_name()
    return f"cpu ({os.cpu_count()} cores, {platform.processor() or platform.machine()})"


def write_json(path: str | None, report: dict) -> None:
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(report, indent=2))
