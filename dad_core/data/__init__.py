"""Plain data files of dad_core (ImageNet class-id lists), read with importlib.resources."""
