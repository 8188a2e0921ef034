"""Discretizers (Q): image-to-image models through a discrete code, differentiable w.r.t. the input."""
from dad_core.discretizers.base import Discretizer, IdentityDiscretizer
from dad_core.discretizers.factory import DiscretizerConfig, create_discretizer, list_discretizers, register_discretizer

__all__ = ["Discretizer", "IdentityDiscretizer", "DiscretizerConfig", "list_discretizers", "register_discretizer", "create_discretizer",
           "VQGANDiscretizer"]


def __getattr__(name):  # taming is imported only when a VQGAN is actually used
    if name == "VQGANDiscretizer":
        from dad_core.discretizers.vqgan import VQGANDiscretizer

        return VQGANDiscretizer
    raise AttributeError(name)
