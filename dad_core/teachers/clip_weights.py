"""Build an open_clip model whose activation matches its weights (QuickGELU vs GELU), from a tag or a file.

OpenAI's CLIP weights were trained with QuickGELU (x * sigmoid(1.702 x)), but open_clip's plain configs
(`ViT-L-14`) use nn.GELU: open_clip 3.3 then only warns, loads the weights strictly, and the model is quietly
worse. Here the activation is the one the pretrained tag's config asks for (`quick_gelu`), and a model whose
activation still differs from what its weights need is an error.

    tag        -> open_clip's pretrained config says quick_gelu or not: that is what gets built
    .pt / .safetensors / .bin state dict -> the model config's own activation (name a `-quickgelu` model for
                  OpenAI-trained weights)
    TorchScript .pt (OpenAI's release files) -> loaded with torch.jit.load, built with QuickGELU
"""
from __future__ import annotations

import os
import warnings
import zipfile

import torch
from torch import nn

_JIT_ONLY_KEYS = ("input_resolution", "context_length", "vocab_size")  # OpenAI's TorchScript extras


def uses_quick_gelu(model: nn.Module) -> bool:
    from open_clip.transformer import QuickGELU

    return any(isinstance(m, QuickGELU) for m in model.modules())


def tag_wants_quick_gelu(model_name: str, tag: str) -> bool:
    """What the pretrained tag was trained with (open_clip's pretrained config, key `quick_gelu`)."""
    import open_clip

    return bool(open_clip.get_pretrained_cfg(model_name, tag).get("quick_gelu", False))


def is_torchscript(path: str) -> bool:
    """A TorchScript archive (OpenAI's `ViT-L-14.pt` and friends) rather than a pickled state dict."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        return any(name.endswith("/constants.pkl") or name == "constants.pkl" for name in z.namelist())


def torchscript_state_dict(path: str) -> dict[str, torch.Tensor]:
    """The weights of a TorchScript CLIP file, under open_clip's parameter names (they are OpenAI's names)."""
    try:
        scripted = torch.jit.load(path, map_location="cpu")
    except RuntimeError as e:
        raise ValueError(f"{path!r} looks like a TorchScript archive but torch.jit.load cannot read it ({e}); "
                         "pass a state dict file (.pt/.bin saved with torch.save(model.state_dict())) or "
                         ".safetensors instead") from e
    state_dict = scripted.state_dict()
    for key in _JIT_ONLY_KEYS:
        state_dict.pop(key, None)
    return state_dict


def create_clip(model_name: str, pretrained: str | None) -> nn.Module:
    """open_clip.create_model with the activation the weights need; ValueError if they still disagree."""
    import open_clip

    config_quick = bool(open_clip.get_model_config(model_name).get("quick_gelu", False))
    kwargs: dict = {}
    if pretrained is None:
        want = config_quick
    elif os.path.isfile(pretrained) and is_torchscript(pretrained):
        model = open_clip.create_model(model_name, pretrained=None, force_quick_gelu=True)
        state_dict = torchscript_state_dict(pretrained)
        rebuilt = {n for n, _ in model.named_buffers()} - set(model.state_dict())  # e.g. attn_mask: not weights
        try:
            model.load_state_dict({k: v for k, v in state_dict.items() if k not in rebuilt}, strict=True)
        except RuntimeError as e:
            raise ValueError(f"could not load CLIP weights {pretrained!r} into {model_name!r}: {e}") from e
        return _checked(model, True, model_name, pretrained)
    elif os.path.isfile(pretrained):
        want = config_quick
    else:
        want = tag_wants_quick_gelu(model_name, pretrained)
        if want and not config_quick:
            kwargs["force_quick_gelu"] = True
        elif config_quick and not want:
            kwargs["quick_gelu"] = False  # final config override (open_clip applies model kwargs last)
    with warnings.catch_warnings():
        # open_clip warns about a QuickGELU mismatch it then ignores: here it must not pass silently.
        warnings.filterwarnings("ignore" if "quick_gelu" in kwargs else "error", message=".*QuickGELU mismatch")
        try:
            model = open_clip.create_model(model_name, pretrained=pretrained, **kwargs)
        except UserWarning as e:
            raise ValueError(f"open_clip model {model_name!r} and weights {pretrained!r}: {e}") from e
        except RuntimeError as e:  # e.g. a checkpoint of another architecture
            raise ValueError(f"could not load CLIP weights {pretrained!r} into {model_name!r}: {e}") from e
    return _checked(model, want, model_name, pretrained)


def _checked(model: nn.Module, want_quick: bool, model_name: str, pretrained: str | None) -> nn.Module:
    if uses_quick_gelu(model) != want_quick:
        raise ValueError(f"open_clip model {model_name!r} was built with "
                         f"{'QuickGELU' if uses_quick_gelu(model) else 'GELU'} but weights {pretrained!r} need "
                         f"{'QuickGELU' if want_quick else 'GELU'}; use the matching model name "
                         f"(e.g. {model_name.removesuffix('-quickgelu')}{'-quickgelu' if want_quick else ''})")
    return model
