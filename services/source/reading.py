"""Fetch and decode a slice of a source listing: runs inside the generator's CPU read tasks."""
from __future__ import annotations

import dataclasses
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Sequence

import pyarrow.parquet as pq

from services.source.decode import DEFAULT_LARGE_PIXELS, DEFAULT_MAX_PIXELS, EMPTY_FILE, UNREADABLE, DecodedImage, decode_image
from services.source.listing import SourceItem, SourceListing
from services.storage import open_filesystem


@dataclass(frozen=True)
class ReadSpec:
    """Everything a worker needs to read items of one source (small and picklable, unlike a listing)."""

    uri: str
    format: str
    image_size: int
    image_column: str | None = None
    max_pixels: int = DEFAULT_MAX_PIXELS
    storage_options: dict[str, Any] = field(default_factory=dict)
    base_uri: str = ""                   # item source_ids are relative to it (source_path = base_uri/source_id)
    large_pixels: int = DEFAULT_LARGE_PIXELS
    view_image_size: int | None = None   # also decode each image at this size (the generator's --view-image-size)

    @classmethod
    def for_listing(cls, listing: SourceListing, image_size: int, max_pixels: int = DEFAULT_MAX_PIXELS,
                    storage_options: dict[str, Any] | None = None,
                    large_pixels: int = DEFAULT_LARGE_PIXELS) -> "ReadSpec":
        return cls(listing.uri, listing.format, image_size, listing.image_column, max_pixels,
                   dict(storage_options or {}), listing.base_uri or listing.uri, large_pixels)


def fetch_bytes(spec: ReadSpec, items: Sequence[SourceItem]) -> list[bytes | Exception]:
    """Raw encoded bytes of each item, or the exception that stopped reading it."""
    fs, _ = open_filesystem(spec.uri, spec.storage_options)
    if spec.format == "parquet":
        return _fetch_parquet(fs, spec.image_column, items)
    paths = [item.path for item in items]
    found = fs.cat(paths, on_error="return") if paths else {}
    if len(paths) == 1 and not isinstance(found, dict):  # fsspec returns bare bytes for a single path
        found = {paths[0]: found}
    return [found.get(p, FileNotFoundError(p)) for p in paths]


def _fetch_parquet(fs, column: str, items: Sequence[SourceItem]) -> list[bytes | Exception]:
    out: list[bytes | Exception] = [FileNotFoundError("not read")] * len(items)
    groups: dict[tuple[str, int], list[int]] = defaultdict(list)
    for pos, item in enumerate(items):
        groups[(item.path, item.row_group)].append(pos)
    for (path, group), positions in groups.items():
        try:
            with fs.open(path, "rb") as f:
                values = pq.ParquetFile(f).read_row_group(group, columns=[column]).column(0).to_pylist()
        except Exception as e:  # noqa: BLE001 - an unreadable file costs its rows, not the job
            for pos in positions:
                out[pos] = e
            continue
        for pos in positions:
            value = values[items[pos].row]
            out[pos] = (value.get("bytes") if isinstance(value, dict) else value) or b""
    return out


def read_items(spec: ReadSpec, items: Sequence[SourceItem]) -> list[DecodedImage]:
    """Fetch and decode items; each failure is a DecodedImage with a reason, never an exception."""
    results = []
    for data in fetch_bytes(spec, items):
        if isinstance(data, Exception):
            results.append(DecodedImage(None, error=UNREADABLE))
        elif not data:
            results.append(DecodedImage(None, error=EMPTY_FILE))
        else:
            result = decode_image(data, spec.image_size, spec.max_pixels, spec.large_pixels)
            if spec.view_image_size and result.pixels is not None:
                larger = decode_image(data, spec.view_image_size, spec.max_pixels, spec.large_pixels).pixels
                result = dataclasses.replace(result, view_pixels=larger)
            results.append(result)
    return results
