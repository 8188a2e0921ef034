"""Training metrics as append-only JSON lines next to the checkpoints, and a progress bar in the terminal.

`<out>/metrics.jsonl` holds one JSON object per line (schemas.results.MetricRecord, with "version": 1), appended
as the run goes:

    {"type": "event", "event": "start"|"resume"|"end", "epoch": 0, "step": 0, "time": ...}
    {"type": "step", "epoch": 0, "step": 10, "lr": ..., "loss": ..., "ce": ..., "kd_clean": ..., "images_per_s": ...}
    {"type": "epoch", "epoch": 0, "step": 40, "val_top1": ..., "val_top5": ..., "epoch_time_s": ...}

A run killed mid-epoch resumes from its last checkpoint: first the file is cut back to that checkpoint's
step (`rewind`, one atomic rewrite), so the epoch's steps logged again after the `resume` event are not
duplicates. `read_metrics` still keeps the last record per step and epoch (older files may have both).
Local files get every line as it is logged; object stores cannot append, so there the file is re-uploaded
whole at most every `flush_interval_s` (and at every epoch end). `images_per_s` counts the images the
student trains on (clean + Q(x')), summed over ranks.
"""
from __future__ import annotations

import json
import time
from typing import Any, Callable, Mapping

from schemas.results import METRICS_NAME, METRICS_VERSION, parse_metrics  # noqa: F401 - the format, re-exported
from services.storage import atomic_write_bytes, is_local, join, open_filesystem


class MetricsLog:
    """Buffered JSONL writer for rank 0 (other ranks get a disabled one that writes nothing)."""

    def __init__(self, out_uri: str, storage_options: Mapping[str, Any] | None = None, enabled: bool = True,
                 flush_interval_s: float = 30.0, on_record: Callable[[Mapping[str, Any]], None] | None = None):
        self.enabled = enabled
        self.on_record = on_record  # e.g. services.tracking.metrics_sink: a copy of each record to MLflow
        self.fs, root = open_filesystem(out_uri, storage_options)
        self.path = join(root, METRICS_NAME)
        self.flush_interval_s = flush_interval_s
        self._pending: list[str] = []
        self._remote_text: bytes | None = None  # whole-file copy for object stores
        self._last_flush = time.monotonic()

    def log(self, record: Mapping[str, Any], flush: bool = False) -> None:
        if not self.enabled:
            return
        line = {"version": METRICS_VERSION, **record, "time": round(time.time(), 3)}
        self._pending.append(json.dumps(line, allow_nan=True) + "\n")
        if self.on_record is not None:
            self.on_record(line)
        if flush or is_local(self.fs) or time.monotonic() - self._last_flush > self.flush_interval_s:
            self.flush()

    def rewind(self, step: int) -> int:
        """Drop step/epoch records past `step` (logged after the checkpoint a resume starts from) and torn
        lines; events stay. Returns how many lines were dropped."""
        if not self.enabled:
            return 0
        self.flush()
        try:
            lines = self.fs.cat_file(self.path).decode(errors="replace").splitlines()
        except FileNotFoundError:
            return 0
        kept = []
        for line in lines:
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by the kill
            if rec.get("type") in ("step", "epoch") and (rec.get("step") or 0) > step:
                continue
            kept.append(line + "\n")
        data = "".join(kept).encode()
        atomic_write_bytes(self.fs, self.path, data)
        self._remote_text = None if is_local(self.fs) else data
        return len(lines) - len(kept)

    def flush(self) -> None:
        if not self.enabled or not self._pending:
            return
        data = "".join(self._pending).encode()
        if is_local(self.fs):
            self.fs.makedirs(self.path.rsplit("/", 1)[0], exist_ok=True)
            with open(self.path, "ab") as f:
                f.write(data)
        else:
            if self._remote_text is None:
                try:
                    self._remote_text = self.fs.cat_file(self.path)
                except FileNotFoundError:
                    self._remote_text = b""
            self._remote_text += data
            atomic_write_bytes(self.fs, self.path, self._remote_text)
        self._pending.clear()
        self._last_flush = time.monotonic()


def percent(fraction: float) -> str:
    """Validation accuracy as people read it (`0.4583` -> `45.8%`); the records keep the fraction."""
    return f"{100 * fraction:.1f}%"


def read_metrics(out_uri: str, storage_options: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """The run's metrics, de-duplicated across resumes (see parse_metrics); [] if none yet."""
    fs, root = open_filesystem(out_uri, storage_options)
    try:
        text = fs.cat_file(join(root, METRICS_NAME)).decode()
    except FileNotFoundError:
        return []
    return parse_metrics(text.splitlines())


def progress_bar(total: int, desc: str, enabled: bool, in_ray_worker: bool):
    """tqdm in a terminal; Ray's tqdm inside a Ray worker (a plain bar's redraws would flood the driver log)."""
    if not enabled:
        return _NoBar()
    if in_ray_worker:
        return _RayBar(total, desc)
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="step", dynamic_ncols=True, leave=False)


class _RayBar:
    """ray.experimental.tqdm_ray (drawn by the driver) with tqdm's set_postfix, which it lacks."""

    def __init__(self, total: int, desc: str):
        from ray.experimental.tqdm_ray import tqdm as ray_tqdm

        self.desc, self.bar = desc, ray_tqdm(total=total, desc=desc)

    def update(self, n: int = 1) -> None:
        self.bar.update(n)

    def set_postfix(self, **values) -> None:
        self.bar.set_description(" ".join([self.desc] + [f"{k}={v}" for k, v in values.items()]))

    def close(self) -> None:
        self.bar.close()


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def set_postfix(self, *args, **kwargs) -> None:
        pass

    def close(self) -> None:
        pass
