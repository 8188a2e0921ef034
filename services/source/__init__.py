"""Image sources: list an ImageFolder tree or Parquet image dataset on any fsspec URL, read and decode it."""
from services.source.class_map import ClassMapError, load_class_map, parse_class_map, resolve_class_names
from services.source.decode import DEFAULT_MAX_PIXELS, DecodedImage, decode_image
from services.source.listing import SourceError, SourceItem, SourceListing, list_source
from services.source.reading import ReadSpec, fetch_bytes, read_items

__all__ = [
    "ClassMapError", "load_class_map", "parse_class_map", "resolve_class_names",
    "DEFAULT_MAX_PIXELS", "DecodedImage", "decode_image",
    "SourceError", "SourceItem", "SourceListing", "list_source",
    "ReadSpec", "fetch_bytes", "read_items",
]
