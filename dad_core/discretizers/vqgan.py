"""VQGAN as the discretizer Q (Sec. 3.3, App. C): encode -> quantize to a codebook -> decode.

Built from a taming config and a checkpoint path. The paper's default is f=8, d=4, K=16384 (the
latent-diffusion 'vq-f8' first-stage model); taming's ImageNet f16 models work the same way.
The quantizer's straight-through estimator lets gradients flow from Q's output back to its input,
which the DAD attack needs.
"""
from __future__ import annotations

import contextlib
import io
import os
import pickle
from pathlib import Path
from typing import Any, Mapping

import torch
import yaml

from dad_core.discretizers.base import Discretizer
from dad_core.images import check_images
from dad_core.discretizers.taming_compat import import_vqmodel

# Keys of the GAN/perceptual training loss in taming and latent-diffusion checkpoints; Q does not need them.
_TRAINING_ONLY_PREFIXES = ("loss.",)


def load_taming_config(config: str | os.PathLike | Mapping[str, Any]) -> dict:
    """VQModel params from a taming YAML (`model: {target, params}`), a bundled name, or a dict."""
    if isinstance(config, Mapping):
        cfg = dict(config)
    else:
        from dad_core.model_configs import vqgan_config_path

        cfg = yaml.safe_load(Path(vqgan_config_path(str(config))).read_text())
    if "model" in cfg:
        cfg = cfg["model"]
    if "params" in cfg:
        cfg = cfg["params"]
    for key in ("ddconfig", "n_embed", "embed_dim"):
        if key not in cfg:
            raise ValueError(f"taming config is missing {key!r} (expected model.params.{key})")
    return cfg


def load_state_dict(path: str | os.PathLike, trusted: bool = False) -> dict[str, torch.Tensor]:
    """Read a plain or Lightning (`{"state_dict": ...}`) checkpoint.

    Tensors-only loading is the default; Lightning checkpoints that pickle callbacks need `trusted=True`
    (full unpickling runs code from the file: only for files you trust).
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"VQGAN checkpoint not found: {str(path)!r}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=not trusted)
    except pickle.UnpicklingError as e:
        if "can still be loaded" not in str(e):  # torch's wording for "only non-tensor globals stopped it"
            raise ValueError(f"cannot read VQGAN checkpoint {str(path)!r}: not a torch checkpoint ({e})") from e
        raise ValueError(f"{str(path)!r} holds more than tensors (e.g. a Lightning checkpoint with callbacks); "
                         "set discretizer.trust_checkpoint=true if you trust the file") from e
    except Exception as e:
        raise ValueError(f"cannot read VQGAN checkpoint {str(path)!r}: {e}") from e
    sd = obj.get("state_dict", obj) if isinstance(obj, dict) else None
    if not isinstance(sd, dict):
        raise ValueError(f"{str(path)!r} is not a state_dict checkpoint")
    return {k: v for k, v in sd.items() if not k.startswith(_TRAINING_ONLY_PREFIXES)}


class VQGANDiscretizer(Discretizer):
    """Q(x) = decode(quantize(encode(x))), in [0, 1] pixel space (taming works in [-1, 1])."""

    def __init__(self, vqmodel: torch.nn.Module):
        super().__init__()
        self.vqmodel = vqmodel
        self.downsample_factor = 2 ** (vqmodel.encoder.num_resolutions - 1)
        for p in self.parameters():
            p.requires_grad_(False)
        self.eval()

    @classmethod
    def from_config(cls, config: str | os.PathLike | Mapping[str, Any], checkpoint: str | None = None,
                    trust_checkpoint: bool = False) -> "VQGANDiscretizer":
        params = load_taming_config(config)
        VQModel = import_vqmodel()
        with contextlib.redirect_stdout(io.StringIO()):  # taming prints the latent shape on construction
            model = VQModel(ddconfig=params["ddconfig"], lossconfig={"target": "torch.nn.Identity"},
                            n_embed=params["n_embed"], embed_dim=params["embed_dim"])
        if checkpoint is not None:
            sd = load_state_dict(checkpoint, trusted=trust_checkpoint)
            try:
                model.load_state_dict(sd, strict=True)
            except RuntimeError as e:
                raise ValueError(f"VQGAN checkpoint {checkpoint!r} does not match the config: {e}") from e
        return cls(model)

    def discretize(self, images: torch.Tensor) -> torch.Tensor:  # (B, 3, H, W) in [0, 1]
        return self._through_codes(images)[0]

    def quantize(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        check_images(images)
        return self._through_codes(images)

    def _through_codes(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h, w = images.shape[-2:]
        f = self.downsample_factor
        if h % f or w % f:
            raise ValueError(f"VQGAN with downsampling factor {f} needs image sides divisible by {f}, got {h}x{w}")
        quant, _, info = self.vqmodel.encode(images * 2 - 1)  # straight-through quantizer keeps the gradient
        decoded = self.vqmodel.decode(quant)
        codes = info[2].reshape(images.shape[0], -1)  # (B, h*w) code indices of the latent grid
        return ((decoded.clamp(-1, 1) + 1) / 2).to(images.dtype), codes
