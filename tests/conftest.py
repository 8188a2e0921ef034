"""Session fixtures shared by all tests: a local Ray, an S3 server on 127.0.0.1, tiny image folders.

Nothing here needs /work/shared, a GPU, the network or pretrained weights: images are made on the fly,
models are the `tiny` preset's random-init ones, and S3 is moto's server (as s3fs's own tests do).
"""
from __future__ import annotations

import atexit
import logging
import os
import shutil
import socket
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # an open_clip hub tag must fail at once, never download
# Caches the code keeps between runs (verified-set markers) go to a folder of this test session, not ~/.cache.
os.environ["DAD_CACHE_DIR"] = tempfile.mkdtemp(prefix="dad-test-cache-")
atexit.register(shutil.rmtree, os.environ["DAD_CACHE_DIR"], ignore_errors=True)

S3_BUCKET = "dad-test"
IMAGE_FOLDER_CLASSES = ("n01440764", "n01443537", "n02123045")  # ImageNet wnids: tench, goldfish, tabby cat


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def ray_local():
    """One local Ray (2 CPUs) for the whole session: starting Ray costs 3-7 s."""
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, logging_level=logging.WARNING,
             object_store_memory=500 * 1024 * 1024)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def s3_server():
    """A real S3-protocol server (moto) on 127.0.0.1 with a bucket; yields (endpoint URL, storage options)."""
    from moto.server import ThreadedMotoServer

    fake = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
    saved = {k: os.environ.get(k) for k in fake}
    os.environ.update(fake)
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    options = {"endpoint_url": endpoint, "key": "testing", "secret": "testing"}
    import boto3

    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket=S3_BUCKET)
    yield endpoint, options
    server.stop()
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def write_image(path: Path, seed: int, size: tuple[int, int] = (48, 40), mode: str = "RGB", fmt: str | None = None) -> Path:
    """A small random image (smooth, so JPEG and the VQ model see structure, not noise)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    w, h = size
    base = rng.integers(0, 256, (h // 8 + 1, w // 8 + 1, 3), dtype=np.uint8)
    img = Image.fromarray(base, "RGB").resize((w, h), Image.BILINEAR)
    if mode != "RGB":
        img = img.convert(mode)
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, format=fmt)
    return path


@pytest.fixture(scope="session")
def make_image_folder() -> Callable[..., Path]:
    """Factory: make_image_folder(root, classes=..., per_class=4) -> an ImageFolder tree of small JPEGs."""

    def make(root: Path, classes=IMAGE_FOLDER_CLASSES, per_class: int = 4, size=(48, 40)) -> Path:
        for c, name in enumerate(classes):
            for i in range(per_class):
                write_image(root / name / f"img_{i:03d}.jpg", seed=100 * c + i, size=size)
        return root

    return make


@pytest.fixture(scope="session")
def tiny_image_folder(tmp_path_factory, make_image_folder) -> Path:
    """3 ImageNet-wnid classes x 4 JPEGs (read-only by convention: copy it before changing it)."""
    return make_image_folder(tmp_path_factory.mktemp("tiny_image_folder"))


@pytest.fixture(scope="session")
def image_writer() -> Callable[..., Path]:
    """`write_image` as a fixture, for tests that build their own folders (bad files, odd modes)."""
    return write_image


MESSY_MAX_PIXELS = 250 * 250
MESSY_LARGE_PIXELS = 100 * 100  # gray.png (120 x 100) is decoded and counted as large


@pytest.fixture(scope="session")
def messy_image_folder(tmp_path_factory, make_image_folder) -> Path:
    """tiny_image_folder's 12 JPEGs plus every kind of awkward input the generator must survive.

    Converted (5): CMYK, L, I;16, P, RGBA. Errored (5): corrupt, truncated, empty_file, too_large (with
    max_pixels=MESSY_MAX_PIXELS), unreadable (a dangling symlink). Skipped while listing: a text file and
    a file whose name is not UTF-8.
    """
    from PIL import Image

    root = make_image_folder(tmp_path_factory.mktemp("messy_image_folder"))
    tench, goldfish, tabby = IMAGE_FOLDER_CLASSES
    write_image(root / tench / "cmyk.jpg", 1, mode="CMYK")
    write_image(root / goldfish / "gray.png", 2, mode="L", size=(120, 100))
    sixteen = (np.arange(48 * 40, dtype=np.uint32).reshape(40, 48) * 30).astype(np.uint16)
    Image.fromarray(sixteen).save(root / goldfish / "sixteen.png")
    write_image(root / tabby / "palette.png", 3, mode="P")
    write_image(root / tabby / "alpha.png", 4, mode="RGBA")
    (root / tench / "corrupt.jpg").write_bytes(b"definitely not an image")
    full = write_image(root / tench / "full.jpg", 5, size=(200, 200)).read_bytes()
    (root / tench / "full.jpg").unlink()
    (root / tench / "truncated.jpg").write_bytes(full[: len(full) // 2])
    (root / goldfish / "zero.jpg").write_bytes(b"")
    write_image(root / tabby / "huge.png", 6, size=(300, 300))
    os.symlink(root / "does-not-exist.jpg", root / tabby / "dangling.jpg")
    (root / tench / "notes.txt").write_text("not an image")
    with open(os.fsencode(root / tench) + b"/caf\xe9.jpg", "wb") as f:  # a Latin-1 name: not UTF-8
        f.write(write_image(root / tench / "latin1.jpg", 7).read_bytes())
    (root / tench / "latin1.jpg").unlink()
    return root


@pytest.fixture(scope="session")
def tiny_sample_set(ray_local, messy_image_folder, tmp_path_factory):
    """A sample set generated once per session from messy_image_folder (5 shards of 5 items)."""
    from services.generator import GeneratorConfig, run_generation

    config = GeneratorConfig(source=str(messy_image_folder), out=str(tmp_path_factory.mktemp("store")), preset="tiny",
                             shard_size=5, batch_size=4, cpus_per_actor=0.5, max_pixels=MESSY_MAX_PIXELS,
                             large_pixels=MESSY_LARGE_PIXELS, progress_bar=False)
    statuses = []
    result = run_generation(config, on_progress=statuses.append)
    return config, result, statuses
