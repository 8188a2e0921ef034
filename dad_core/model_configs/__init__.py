"""Model architectures kept as data: open_clip JSON configs and taming VQ-model YAML configs.

`tiny-*` configs are random-init test/demo models; the others describe the paper's real models, whose
weights users pass by tag or path.
"""
from __future__ import annotations

from importlib import resources
from pathlib import Path

_registered = False


def config_dir() -> Path:
    return Path(str(resources.files(__package__)))


def register_open_clip_configs() -> None:
    """Make our open_clip JSON configs (e.g. `tiny-clip-vit`) known to `open_clip.create_model`."""
    global _registered
    if not _registered:
        import open_clip

        for path in sorted(config_dir().glob("*.json")):
            open_clip.add_model_config(path)
        _registered = True


def vqgan_config_names() -> list[str]:
    return sorted(p.stem for p in (config_dir() / "vqgan").glob("*.yaml"))


def vqgan_config_path(name: str) -> Path:
    """Path of a bundled taming config by name (e.g. 'vq-f8'), or `name` itself if it is a YAML file."""
    path = Path(name)
    if path.suffix in (".yaml", ".yml"):
        if not path.is_file():
            raise FileNotFoundError(f"taming config not found: {name!r}")
        return path
    path = config_dir() / "vqgan" / f"{name}.yaml"
    if not path.is_file():
        raise ValueError(f"unknown VQGAN config {name!r}; bundled: {vqgan_config_names()} (or pass a .yaml path)")
    return path
