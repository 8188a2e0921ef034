"""decode_image: every odd or broken input is converted or skipped with a reason, never raised."""
import io

import numpy as np
import pytest
from PIL import Image

from services.source.decode import decode_image, resize_center_crop


def encode(img: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def gradient(w=40, h=30) -> Image.Image:
    x = np.linspace(0, 255, w, dtype=np.float32)[None, :, None]
    y = np.linspace(0, 255, h, dtype=np.float32)[:, None, None]
    return Image.fromarray(np.concatenate([np.broadcast_to(x, (h, w, 1)), np.broadcast_to(y, (h, w, 1)),
                                           np.full((h, w, 1), 128, np.float32)], axis=2).astype(np.uint8), "RGB")


def test_rgb_jpeg_is_resized_and_center_cropped():
    out = decode_image(encode(gradient(64, 32), "JPEG"), 16)
    assert out.error is None and out.converted_from is None
    assert out.pixels.shape == (16, 16, 3) and out.pixels.dtype == np.uint8


@pytest.mark.parametrize("mode, fmt", [("CMYK", "JPEG"), ("L", "PNG"), ("P", "PNG"), ("RGBA", "PNG"),
                                       ("LA", "PNG"), ("1", "PNG")])
def test_other_modes_are_converted_to_rgb_and_reported(mode, fmt):
    out = decode_image(encode(gradient().convert(mode), fmt), 16)
    assert out.error is None
    assert out.converted_from == mode
    assert out.pixels.shape == (16, 16, 3)


def test_sixteen_bit_grayscale_keeps_its_range_instead_of_clipping_to_white():
    arr = np.tile(np.linspace(0, 65535, 32, dtype=np.uint16), (32, 1))  # dark to bright
    img = Image.fromarray(arr)  # mode I;16
    out = decode_image(encode(img, "PNG"), 32)
    assert out.error is None and out.converted_from in ("I;16", "I")
    row = out.pixels[16, :, 0].astype(int)
    assert row[0] < 10 and row[-1] > 245 and (np.diff(row) >= 0).all()


def test_transparent_pixels_become_white():
    rgba = Image.new("RGBA", (20, 20), (255, 0, 0, 0))  # fully transparent red
    out = decode_image(encode(rgba, "PNG"), 8)
    assert out.converted_from == "RGBA"
    assert (out.pixels == 255).all()


@pytest.mark.parametrize("data, reason", [
    (b"", "empty_file"),
    (b"this is not an image at all", "corrupt"),
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 20, "corrupt"),
])
def test_broken_bytes_are_skipped_with_a_reason(data, reason):
    out = decode_image(data, 16)
    assert out.pixels is None and out.error == reason


def test_truncated_file_is_skipped_as_truncated():
    data = encode(gradient(200, 200), "JPEG")
    out = decode_image(data[: len(data) // 2], 16)
    assert out.pixels is None and out.error == "truncated"


def test_huge_images_are_skipped_before_decoding():
    data = encode(gradient(300, 300), "PNG")
    assert decode_image(data, 16, max_pixels=300 * 300 - 1).error == "too_large"
    assert decode_image(data, 16, max_pixels=300 * 300).error is None


def test_images_above_the_large_pixel_count_are_decoded_and_flagged():
    data = encode(gradient(300, 200), "PNG")
    big = decode_image(data, 16, max_pixels=300 * 200, large_pixels=300 * 200 - 1)
    assert big.error is None and big.large and big.pixels.shape == (16, 16, 3)
    assert not decode_image(data, 16, large_pixels=300 * 200).large
    assert not decode_image(data, 16).large  # default: PIL's warning threshold (~89.5 M pixels)


def test_large_jpeg_is_decoded_at_reduced_scale_to_the_same_size():
    out = decode_image(encode(gradient(2000, 1500), "JPEG"), 32)
    assert out.error is None and out.pixels.shape == (32, 32, 3)


def test_resize_center_crop_handles_tiny_and_portrait_images():
    assert resize_center_crop(Image.new("RGB", (1, 1)), 8).shape == (8, 8, 3)
    assert resize_center_crop(Image.new("RGB", (10, 50)), 8).shape == (8, 8, 3)
