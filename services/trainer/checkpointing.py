"""Checkpoints on any fsspec URL: save every epoch, resume the last one, export a plain timm state_dict.

    <out>/train_config.json          the run's config (a re-run must match it to resume)
    <out>/checkpoints/epoch-0003.pt  model, optimizer, scheduler, epochs done, step, RNG of every rank
    <out>/checkpoints/latest.json    written after the checkpoint it names: a kill mid-save keeps the last one
    <out>/metrics.jsonl              (metrics.py)
    <out>/model.pth                  final weights, a plain state_dict: timm.create_model(..., checkpoint_path=)
    <out>/model.json                 what model.pth is: timm name, classes, input size, normalisation
    <out>/model/                     the same weights as a standard timm / Hugging Face folder (model_folder.py)

Checkpoints are loaded with `weights_only=True` (no pickled code), so RNG states are stored as tensors and
plain tuples.
"""
from __future__ import annotations

import io
import json
import random
from typing import Any, Mapping

import numpy as np
import torch

from services.storage import StorageError, StoreFolder
from services.trainer.model_folder import MODEL_FOLDER, float_state_dict, folder_files

CHECKPOINT_FORMAT = "dad-train-checkpoint"
CHECKPOINT_VERSION = 1
CONFIG_NAME = "train_config.json"
LATEST_NAME = "checkpoints/latest.json"
MODEL_NAME = "model.pth"
MODEL_INFO_NAME = "model.json"
KEEP_CHECKPOINTS = 2


def capture_rng() -> dict[str, Any]:
    """This process's RNG states (torch, CUDA, numpy, python) in a weights_only-loadable form."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), pos,
                                                        has_gauss, gauss),
             "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: Mapping[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


class RunStore(StoreFolder):
    """The `--out` folder of one training run."""

    # -- config -----------------------------------------------------------------------------------------
    def read_config(self) -> dict[str, Any] | None:
        data = self.read(CONFIG_NAME)
        if data is None:
            return None
        try:
            return json.loads(data)
        except json.JSONDecodeError as e:
            raise ValueError(f"{self.uri}/{CONFIG_NAME} is corrupt: {e}") from None

    def write_config(self, config: Mapping[str, Any]) -> None:
        public = {k: v for k, v in config.items() if k != "storage_options"}  # may hold credentials
        self.write(CONFIG_NAME, json.dumps(public, indent=2, sort_keys=True).encode())

    # -- checkpoints ------------------------------------------------------------------------------------
    def latest(self) -> dict[str, Any] | None:
        """{"epoch": epochs done, "path": ..., "global_step": ...} of the last complete checkpoint, or None."""
        data = self.read(LATEST_NAME)
        if data is None:
            return None
        try:
            meta = json.loads(data)
            return {"epoch": int(meta["epoch"]), "path": str(meta["path"]), "global_step": int(meta["global_step"])}
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as e:
            raise ValueError(f"{self.uri}/{LATEST_NAME} is corrupt ({e}); delete it to restart from scratch") from None

    def save(self, state: Mapping[str, Any], epoch: int, global_step: int) -> str:
        """Write the checkpoint of `epoch` epochs done, then point latest.json at it; prune old ones."""
        buf = io.BytesIO()
        torch.save({"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, **state,
                    "epoch": epoch, "global_step": global_step}, buf)
        name = f"checkpoints/epoch-{epoch:04d}.pt"
        self.write(name, buf.getvalue())
        self.write(LATEST_NAME, json.dumps({"epoch": epoch, "path": name, "global_step": global_step}).encode())
        self._prune(keep_from=epoch - KEEP_CHECKPOINTS + 1)
        return f"{self.uri}/{name}"

    def _prune(self, keep_from: int) -> None:
        for path in self.list("checkpoints"):
            stem = path.rstrip("/").rsplit("/", 1)[-1]
            if stem.startswith("epoch-") and stem.endswith(".pt") and int(stem[6:-3]) < keep_from:
                self.fs.rm_file(path)

    def load(self, meta: Mapping[str, Any]) -> dict[str, Any]:
        data = self.read(meta["path"])
        if data is None:
            raise StorageError(f"{self.uri}/{LATEST_NAME} names {meta['path']!r}, which is missing")
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        if state.get("format") != CHECKPOINT_FORMAT or state.get("version") != CHECKPOINT_VERSION:
            raise ValueError(f"{self.uri}/{meta['path']} is not a {CHECKPOINT_FORMAT} v{CHECKPOINT_VERSION} file")
        return state

    # -- export -----------------------------------------------------------------------------------------
    def has_model(self) -> bool:
        return self.exists(MODEL_NAME)

    def export(self, model: torch.nn.Module, info: Mapping[str, Any]) -> str:
        """model.pth as a plain float state_dict (what timm's `checkpoint_path` loads), model.json, and the
        model folder (safetensors + timm's config.json). model.json is written last: it marks a finished export."""
        buf = io.BytesIO()
        torch.save(float_state_dict(model), buf)
        self.write(MODEL_NAME, buf.getvalue())
        for name, data in folder_files(model, info).items():
            self.write(f"{MODEL_FOLDER}/{name}", data)
        self.write(MODEL_INFO_NAME, json.dumps(dict(info), indent=2).encode())
        return f"{self.uri}/{MODEL_NAME}"
