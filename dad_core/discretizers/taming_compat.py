"""The one compatibility fix taming-transformers needs with pytorch-lightning 2.x.

`taming.main` (imported by `taming.models.vqgan`) does
`from pytorch_lightning.utilities.distributed import rank_zero_only`; Lightning 2 moved that function to
`pytorch_lightning.utilities.rank_zero`. Aliasing the old module name before the import is enough.
"""
from __future__ import annotations

import importlib
import sys


def import_vqmodel():
    """Return taming's `VQModel` class, importable with Lightning 2.x."""
    name = "pytorch_lightning.utilities.distributed"
    if name not in sys.modules:
        try:
            importlib.import_module(name)
        except ImportError:
            sys.modules[name] = importlib.import_module("pytorch_lightning.utilities.rank_zero")
    from taming.models.vqgan import VQModel

    return VQModel
