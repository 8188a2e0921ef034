"""Import `imagecorruptions` (Michaelis et al. 2019, Hendrycks & Dietterich's corruption code as a library)
on today's numpy / scikit-image / setuptools. All of the compatibility work is here and nowhere else.

imagecorruptions 1.1.2 (the latest release) predates four removals, each patched in its own module only,
without touching numpy, skimage or sys.modules for anyone else:

1. `from pkg_resources import resource_filename` (setuptools >= 81 no longer ships pkg_resources): a
   stand-in is present only while the module imports; it resolves the frost images next to the module.
2. `np.float_` (removed in numpy 2.0, used by `plasma_fractal` for fog): the module sees a numpy proxy
   that adds the alias.
3. `skimage.filters.gaussian(..., multichannel=True)` (removed in scikit-image 0.19+): translated to
   `channel_axis=-1`, the same filter.
4. `scipy.ndimage.interpolation` is deprecated (still works): its warning is silenced during import.

Delete this module when imagecorruptions ships a release that imports cleanly.
"""
from __future__ import annotations

import os
import sys
import types
import warnings
from functools import lru_cache

import numpy as np


def _resource_filename(package: str, resource: str) -> str:
    module = sys.modules[package]
    return os.path.normpath(os.path.join(os.path.dirname(module.__file__), resource))


class _NumpyWithFloatAlias(types.ModuleType):
    """numpy as imagecorruptions expects it: everything forwarded, plus the removed `float_` alias."""

    float_ = np.float64

    def __getattr__(self, name):
        return getattr(np, name)


def _gaussian_with_multichannel(gaussian):
    def patched(image, sigma=1.0, multichannel=None, **kwargs):
        if multichannel:
            kwargs.setdefault("channel_axis", -1)
        return gaussian(image, sigma=sigma, **kwargs)
    return patched


@lru_cache(maxsize=None)
def load_imagecorruptions() -> types.ModuleType:
    """The `imagecorruptions` package, patched to run here; its `corrupt()` is the public entry point."""
    stand_in = None
    if "pkg_resources" not in sys.modules:
        try:
            import pkg_resources  # noqa: F401
        except ImportError:
            stand_in = types.ModuleType("pkg_resources")
            stand_in.resource_filename = _resource_filename
            sys.modules["pkg_resources"] = stand_in
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            import imagecorruptions
            from imagecorruptions import corruptions
    finally:
        if stand_in is not None and sys.modules.get("pkg_resources") is stand_in:
            del sys.modules["pkg_resources"]
    if not getattr(corruptions, "_dad_patched", False):
        corruptions.np = _NumpyWithFloatAlias("numpy")
        corruptions.gaussian = _gaussian_with_multichannel(corruptions.gaussian)
        corruptions._dad_patched = True
    return imagecorruptions
