"""argparse value types shared by every service's command line."""
from __future__ import annotations

import argparse


def key_value(text: str) -> tuple[str, str]:
    """`KEY=VALUE` (e.g. a `--storage-option endpoint_url=http://...`) as a (key, value) pair."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value
