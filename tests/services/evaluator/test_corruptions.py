"""Building -C sets with the imagecorruptions library (on today's numpy / scikit-image, see the shim)."""
import json

import numpy as np
import pytest
from PIL import Image

from services.evaluator.corruptions import (BUILD_MANIFEST, CORRUPTIONS, CorruptionConfig, build_corrupted_folder,
                                            corrupt)
from services.evaluator.imagecorruptions_compat import load_imagecorruptions


def test_the_fifteen_benchmark_corruptions_are_the_librarys_and_all_run_here():
    assert list(CORRUPTIONS) == load_imagecorruptions().get_corruption_names("common")
    clean = (np.random.default_rng(0).random((32, 32, 3)) * 255).astype(np.uint8)
    for name in CORRUPTIONS:
        for severity in (1, 5):
            out = corrupt(clean, name, severity, seed=0)
            assert out.shape == clean.shape and out.dtype == np.uint8, name
    assert np.array_equal(corrupt(clean, "gaussian_noise", 3, seed=7), corrupt(clean, "gaussian_noise", 3, seed=7))


def test_a_built_set_has_one_folder_per_corruption_and_severity_and_differs_from_clean(make_image_folder, tmp_path):
    src = make_image_folder(tmp_path / "src", per_class=1)
    (src / "n01440764" / "broken.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    out = tmp_path / "c"
    manifest = build_corrupted_folder(str(src), str(out), CorruptionConfig(image_size=32))
    assert manifest["num_images"] == 3 and manifest["skipped"] == {"corrupt": 1}
    folders = sorted(p.relative_to(out).as_posix() for p in out.glob("*/*") if p.is_dir())
    assert folders == sorted(f"{c}/{s}" for c in CORRUPTIONS for s in range(1, 6))  # 15 x 5
    corrupted = np.asarray(Image.open(out / "fog" / "3" / "n02123045" / "img_000.JPEG"))
    clean = np.asarray(Image.open(src / "n02123045" / "img_000.jpg").convert("RGB").resize((32, 32)))
    assert corrupted.shape == (32, 32, 3) and np.abs(corrupted.astype(int) - clean).mean() > 5


def test_a_subset_build_is_reused_when_nothing_changed(make_image_folder, tmp_path):
    src = make_image_folder(tmp_path / "src", per_class=1)
    out = tmp_path / "c"
    config = CorruptionConfig(corruptions=("snow", "pixelate"), severities=(2,), image_size=32)
    first = build_corrupted_folder(str(src), str(out), config)
    assert sorted(p.relative_to(out).as_posix() for p in out.glob("*/*")) == ["pixelate/2", "snow/2"]
    image = out / "snow" / "2" / "n01440764" / "img_000.JPEG"
    image.unlink()
    assert build_corrupted_folder(str(src), str(out), config) == first and not image.exists()  # reused
    build_corrupted_folder(str(src), str(out), CorruptionConfig(("snow",), (2,), image_size=32, seed=1))
    assert image.exists() and json.loads((out / BUILD_MANIFEST).read_text())["config"]["seed"] == 1


@pytest.mark.parametrize("kwargs, message", [({"corruptions": ("rain",)}, "unknown corruptions"),
                                             ({"severities": (6,)}, "severities"),
                                             ({"image_size": 16}, ">= 32")])
def test_bad_corruption_settings_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        CorruptionConfig(**kwargs)
