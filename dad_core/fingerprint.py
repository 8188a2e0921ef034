"""Checksums that identify model weights in manifests and run records."""
from __future__ import annotations

import hashlib

import torch
from torch import nn


def module_checksum(module: nn.Module) -> str:
    """sha256 over the state_dict (names, dtypes, shapes and bytes, in key order)."""
    h = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        t = tensor.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        if t.numel():
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()
