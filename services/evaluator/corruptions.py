"""Build an ImageNet-C-style set from any ImageFolder with the standard corruption functions.

The corruptions are Hendrycks & Dietterich's (2019), taken from the `imagecorruptions` library (see
imagecorruptions_compat.py), never re-derived. The preparation follows their `make_imagenet_c.py`: shorter
side to 256, centre crop 224, corrupt, save as JPEG at quality 85; sizes scale with `image_size`.

Layout, the same as the official release so one reader serves both:

    <out>/<corruption>/<severity>/<class>/<file stem>.JPEG
    <out>/c-build.json     written last: config, source fingerprint, counts; a build with the same config
                           and source is reused instead of redone

Each (image, corruption, severity) gets its own seed, so a rebuild gives the same noise on the same image,
independent of order and parallelism (impulse_noise draws from scikit-image's own generator and is the
one exception). Reuse one built set for every model you compare.
"""
from __future__ import annotations

import dataclasses
import io
import json
import posixpath
import sys
import zlib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
from PIL import Image

from dad_core.metrics import SEVERITIES
from services.evaluator.imagecorruptions_compat import load_imagecorruptions
from services.evaluator.suites import sample_items
from services.source import ReadSpec, SourceItem, list_source, read_items
from services.storage import atomic_write_bytes, join, open_filesystem, to_uri

# The 15 corruptions of the benchmark's mCE, in the paper's order (noise, blur, weather, digital).
CORRUPTIONS = ("gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "glass_blur", "motion_blur",
               "zoom_blur", "snow", "frost", "fog", "brightness", "contrast", "elastic_transform", "pixelate",
               "jpeg_compression")
BUILD_MANIFEST = "c-build.json"
BUILD_FORMAT, BUILD_VERSION = "dad-corruption-build", 1


@dataclass(frozen=True)
class CorruptionConfig:
    """What to build. Defaults: the full benchmark (15 corruptions x 5 severities at 224 px)."""

    corruptions: tuple[str, ...] = CORRUPTIONS
    severities: tuple[int, ...] = SEVERITIES
    image_size: int = 224        # centre crop that is corrupted (ImageNet-C: 224)
    resize_ratio: float = 256 / 224  # shorter side before the crop (ImageNet-C: 256 for 224)
    jpeg_quality: int = 85       # make_imagenet_c.py saves JPEG quality 85
    seed: int = 0

    def __post_init__(self):
        object.__setattr__(self, "corruptions", tuple(self.corruptions))
        object.__setattr__(self, "severities", tuple(int(s) for s in self.severities))
        known = load_imagecorruptions().get_corruption_names("all")
        unknown = [c for c in self.corruptions if c not in known]
        if unknown or not self.corruptions:
            raise ValueError(f"unknown corruptions {unknown}; known: {known}" if unknown else "no corruptions given")
        if not self.severities or any(s not in SEVERITIES for s in self.severities):
            raise ValueError(f"severities must be a non-empty subset of {SEVERITIES}, got {self.severities}")
        if self.image_size < 32:  # the library's minimum
            raise ValueError(f"image_size must be >= 32 for the corruption functions, got {self.image_size}")

    @property
    def load_size(self) -> int:
        return round(self.image_size * self.resize_ratio)


def corruption_seed(seed: int, source_id: str, corruption: str, severity: int) -> int:
    return zlib.crc32(f"{seed}/{corruption}/{severity}/{source_id}".encode())


def corrupt(pixels: np.ndarray, corruption: str, severity: int, seed: int) -> np.ndarray:
    """One corrupted copy of a uint8 (H, W, 3) image; numpy's global RNG is seeded, then restored."""
    ic = load_imagecorruptions()
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        return ic.corrupt(pixels, corruption_name=corruption, severity=severity)
    finally:
        np.random.set_state(state)


def centre_crop(pixels: np.ndarray, size: int) -> np.ndarray:
    top, left = (pixels.shape[0] - size) // 2, (pixels.shape[1] - size) // 2
    return pixels[top:top + size, left:left + size]


def output_path(root: str, corruption: str, severity: int, source_id: str) -> str:
    return join(root, corruption, str(severity), posixpath.splitext(source_id)[0] + ".JPEG")


def _encode_jpeg(pixels: np.ndarray, quality: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG", quality=quality, optimize=True)
    return buf.getvalue()


def _corrupt_item(read: ReadSpec, item: SourceItem, out_uri: str, config: CorruptionConfig,
                  storage_options: Mapping[str, Any]) -> str | None:
    """Write every corrupted copy of one image; the reason it was skipped, or None."""
    decoded = read_items(read, [item])[0]
    if decoded.pixels is None:
        return decoded.error
    clean = centre_crop(decoded.pixels, config.image_size)
    fs, root = open_filesystem(out_uri, storage_options)
    for corruption in config.corruptions:
        for severity in config.severities:
            seed = corruption_seed(config.seed, item.source_id, corruption, severity)
            data = _encode_jpeg(corrupt(clean, corruption, severity, seed), config.jpeg_quality)
            path = output_path(root, corruption, severity, item.source_id)
            fs.makedirs(posixpath.dirname(path), exist_ok=True)
            fs.pipe_file(path, data)
    return None


def build_corrupted_folder(source_uri: str, out_uri: str, config: CorruptionConfig | None = None,
                           storage_options: Mapping[str, Any] | None = None, workers: int = 1,
                           limit: int | None = None) -> dict[str, Any]:
    """Build (or reuse) a -C set of `source_uri` under `out_uri`; returns the build manifest.

    `limit` keeps a seeded sample of that many source images (the same sample --limit evaluates).
    """
    config = config or CorruptionConfig()
    options = dict(storage_options or {})
    listing = list_source(source_uri, "imagefolder", storage_options=options)
    items = sample_items(listing.items, limit, config.seed)
    fingerprint = listing.fingerprint().sha256
    wanted = json.loads(json.dumps({"config": dataclasses.asdict(config), "source": listing.uri,
                                    "source_sha256": fingerprint, "limit": limit}))  # as it reads back
    fs, root = open_filesystem(out_uri, options)
    manifest_path = join(root, BUILD_MANIFEST)
    if fs.isfile(manifest_path):
        existing = json.loads(fs.cat_file(manifest_path))
        if {k: existing.get(k) for k in wanted} == wanted:
            return existing
    read = ReadSpec.for_listing(listing, config.load_size, storage_options=options)
    skipped: dict[str, int] = {}
    args = [(read, item, out_uri, config, options) for item in items]
    if workers > 1:
        with ProcessPoolExecutor(workers) as pool:
            reasons = list(pool.map(_corrupt_item, *zip(*args), chunksize=8))
    else:
        reasons = [_corrupt_item(*a) for a in args]
    for reason in filter(None, reasons):
        skipped[reason] = skipped.get(reason, 0) + 1
    manifest = {"format": BUILD_FORMAT, "version": BUILD_VERSION, **wanted, "uri": to_uri(fs, root),
                "class_ids": listing.class_ids, "num_images": len(items) - sum(skipped.values()),
                "skipped": skipped, "listing_skipped": listing.skipped.reasons}
    atomic_write_bytes(fs, manifest_path, json.dumps(manifest, indent=2).encode())
    print(f"built {len(config.corruptions)}x{len(config.severities)} corrupted copies of "
          f"{manifest['num_images']} images under {manifest['uri']}", file=sys.stderr)
    return manifest
