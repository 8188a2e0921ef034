"""Robust image decoding: bytes in, an RGB (S, S, 3) uint8 array out, or a reason why not.

One bad file must never kill a job, so every failure becomes a reason string that the manifest counts:
`empty_file`, `corrupt`, `truncated`, `too_large`. Images in other modes are converted to RGB and the
source mode is reported (`CMYK`, `L`, `P`, `RGBA`, `I;16`, ...) so the manifest can count conversions.
The resize is the usual evaluation transform (shorter side to S, bicubic, then a centre crop), as in
CLIP's and timm's preprocessing.
"""
from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

import numpy as np
from PIL import Image, UnidentifiedImageError

# PIL's own decompression-bomb limit (2 x Image.MAX_IMAGE_PIXELS by default): ~13k x 13k pixels.
DEFAULT_MAX_PIXELS = 178_956_970
# PIL's DecompressionBombWarning threshold (Image.MAX_IMAGE_PIXELS): images above it (but within max_pixels)
# are decoded and flagged `large`, so the manifest counts them (a 12,000 x 12,000 PNG takes ~0.4 GB to decode).
DEFAULT_LARGE_PIXELS = 89_478_485

EMPTY_FILE = "empty_file"
CORRUPT = "corrupt"
TRUNCATED = "truncated"
TOO_LARGE = "too_large"
UNREADABLE = "unreadable"

_ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA")
_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")


@dataclass(frozen=True)
class DecodedImage:
    pixels: np.ndarray | None          # (S, S, 3) uint8, None when the image was skipped
    converted_from: str | None = None  # source mode when a conversion to RGB was needed
    error: str | None = None           # reason the image was skipped
    large: bool = False                # decoded, but above the large-image pixel count
    view_pixels: np.ndarray | None = None  # (V, V, 3) uint8, the larger copy views are cut from (generator --views)


def decode_image(data: bytes, image_size: int, max_pixels: int = DEFAULT_MAX_PIXELS,
                 large_pixels: int = DEFAULT_LARGE_PIXELS) -> DecodedImage:
    """Decode, convert to RGB and resize/centre-crop to `image_size`; never raises for bad input. Images above
    `max_pixels` are skipped (too_large), those above `large_pixels` decoded and flagged `large`."""
    if not data:
        return DecodedImage(None, error=EMPTY_FILE)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # we apply our own limit below
            img = Image.open(io.BytesIO(data))
            if img.width * img.height > max_pixels:
                return DecodedImage(None, error=TOO_LARGE)
            large = img.width * img.height > large_pixels
            if img.format == "JPEG":
                # Decode huge JPEGs at a reduced DCT scale that still covers the target size: fast and exact
                # enough for a resize that follows anyway.
                img.draft(img.mode, (image_size, image_size))
            img.load()
            rgb, converted_from = to_rgb(img)
            return DecodedImage(resize_center_crop(rgb, image_size), converted_from=converted_from, large=large)
    except Image.DecompressionBombError:
        return DecodedImage(None, error=TOO_LARGE)
    except UnidentifiedImageError:
        return DecodedImage(None, error=CORRUPT)
    except (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError) as e:
        return DecodedImage(None, error=TRUNCATED if "truncated" in str(e).lower() else CORRUPT)
    except MemoryError:
        return DecodedImage(None, error=TOO_LARGE)
    except Exception as e:  # noqa: BLE001 - decoders raise odd types (struct.error, zlib.error); never kill the job
        return DecodedImage(None, error=f"decode_error:{type(e).__name__}")


def to_rgb(img: Image.Image) -> tuple[Image.Image, str | None]:
    """RGB version of `img` and the mode it came from (None if it was RGB already)."""
    mode = img.mode
    if mode == "RGB":
        return img, None
    if mode in _SIXTEEN_BIT_MODES:
        # PIL's convert() clips 16-bit values at 255 (a white image); rescale the full range instead.
        arr = np.asarray(img).astype(np.float32) / 257.0
        return Image.fromarray(arr.round().clip(0, 255).astype(np.uint8), "L").convert("RGB"), mode
    if mode == "F":
        arr = np.asarray(img, dtype=np.float32)
        scale = 255.0 if np.nanmax(arr, initial=0.0) <= 1.0 else 1.0
        arr = np.nan_to_num(arr * scale).round().clip(0, 255).astype(np.uint8)
        return Image.fromarray(arr, "L").convert("RGB"), mode
    if mode in _ALPHA_MODES or (mode == "P" and "transparency" in img.info):
        # Composite onto white: transparent pixels often hold arbitrary colours that must not reach the teacher.
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB"), mode
    return img.convert("RGB"), mode


def resize_center_crop(img: Image.Image, size: int) -> np.ndarray:
    """Shorter side to `size` (bicubic), centre crop to size x size; (size, size, 3) uint8."""
    w, h = img.size
    scale = size / min(w, h)
    new_w, new_h = max(size, round(w * scale)), max(size, round(h * scale))
    if (new_w, new_h) != (w, h):
        img = img.resize((new_w, new_h), Image.BICUBIC)
    left, top = (new_w - size) // 2, (new_h - size) // 2
    img = img.crop((left, top, left + size, top + size))
    return np.asarray(img, dtype=np.uint8).copy()  # (S, S, 3)
