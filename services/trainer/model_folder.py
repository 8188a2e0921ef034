"""The trained student as a standard model folder: what timm and the Hugging Face Hub load without this package.

    <out>/model/model.safetensors   the weights (float32, contiguous: safetensors refuses channels_last views)
    <out>/model/config.json         timm's hub config: architecture, num_classes, label_names, pretrained_cfg
                                    (input_size, mean/std, interpolation, crop_pct 1.0 as the trainer validates)

Load it with timm alone:

    timm.create_model("local-dir:<out>/model", pretrained=True)
    timm.create_model(ARCH, pretrained=True, num_classes=K,
                      pretrained_cfg_overlay=dict(file="<out>/model/model.safetensors", num_classes=K))

(the overlay's num_classes tells timm the file's head fits: without it timm drops the head as for ImageNet weights).
`huggingface_hub.upload_folder(repo_id=..., folder_path="<out>/model")` pushes it; `hf-hub:<repo>` then loads it.
The config is written by timm's own `save_config_for_hf`, so it is exactly the format timm reads back.
"""
from __future__ import annotations

import os
import re
import tempfile
from typing import Any, Mapping

import torch

MODEL_FOLDER = "model"
WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"


def float_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The model's weights as plain contiguous CPU tensors, floats as float32 (bf16 runs included)."""
    return {k: v.detach().float().cpu().contiguous() if v.is_floating_point() else v.detach().cpu().contiguous()
            for k, v in model.state_dict().items()}


def folder_files(model: torch.nn.Module, info: Mapping[str, Any]) -> dict[str, bytes]:
    """{file name: bytes} of the model folder, from the model and the trainer's model.json fields
    (student, class_names, image_size, mean, std, objective)."""
    from safetensors.torch import save
    from timm.models._hub import save_config_for_hf

    size = int(info["image_size"])
    data_config = {"input_size": (3, size, size), "mean": tuple(info["mean"]), "std": tuple(info["std"]),
                   "crop_pct": 1.0, "interpolation": "bicubic"}  # services.source.decode resizes bicubic
    # The arch's default pretrained_cfg names its ImageNet weights (tag, license): these weights are not those.
    tag = re.sub(r"[^A-Za-z0-9_]+", "_", str(info.get("objective") or "trained")).strip("_") or "trained"
    model_config = {"label_names": list(info["class_names"]),
                    "pretrained_cfg": {"tag": f"dad_{tag}", "license": None}}
    with tempfile.TemporaryDirectory(prefix="dad-model-folder-") as tmp:
        path = os.path.join(tmp, CONFIG_NAME)
        save_config_for_hf(model, path, model_config=model_config, data_config=data_config)
        with open(path, "rb") as f:
            config = f.read()
    return {WEIGHTS_NAME: save(float_state_dict(model), metadata={"format": "pt"}), CONFIG_NAME: config}
