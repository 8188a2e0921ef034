"""List a source once, in a stable order: an ImageFolder tree or a Parquet image dataset on any fsspec URL.

The sorted item list is the generator's unit of bookkeeping: item ids are relative paths (or `file#row` for
Parquet) and the source fingerprint hashes it. Shards are fixed slices of `shard_order(listing, seed)`, a
seeded permutation of it, so a shard (and the trainer's row groups) mixes classes instead of holding one or
two, and the same source and seed always give the same shards and sample ids, on local disk or S3 alike.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import posixpath
from dataclasses import dataclass, field
from typing import Any, Mapping

import pyarrow as pa
import pyarrow.parquet as pq

from schemas.manifest import ReasonCounts, SourceFingerprint
from services.source.class_map import ClassMap, load_class_map, resolve_class_names
from services.storage import StorageError, describe_storage_error, open_filesystem, storage_errors, to_uri

log = logging.getLogger(__name__)

# torchvision's ImageFolder extensions, plus GIF.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp", ".gif")
SOURCE_FORMATS = ("auto", "imagefolder", "parquet")
_IMAGE_COLUMNS = ("image", "img", "jpg", "png")
_LABEL_COLUMNS = ("label", "labels", "class", "target", "cls")


def escaped_path(path: str) -> str:
    """A path as printable UTF-8: bytes that are not UTF-8 (surrogate-escaped by the OS layer) as \\xNN."""
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _is_utf8(path: str) -> bool:
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:  # a file name that is not UTF-8: item ids, Parquet and JSON cannot hold it
        return False
    return True


class SourceError(ValueError):
    """A source that cannot be used at all (missing, empty, no label column...); the message names it."""


@dataclass(frozen=True)
class SourceItem:
    index: int            # position in the sorted listing
    source_id: str        # stable id: relative path, or "<relative file>#<row>" for Parquet
    path: str             # path inside the source filesystem
    label: int
    size: int = -1        # bytes on storage (-1: unknown)
    row_group: int = -1   # Parquet only: row group and row inside it
    row: int = -1


@dataclass
class SourceListing:
    uri: str
    format: str
    class_ids: list[str]
    class_names: list[str]
    items: list[SourceItem]
    skipped: ReasonCounts = field(default_factory=ReasonCounts)
    image_column: str | None = None      # Parquet only
    class_map: str | None = None
    base_uri: str = ""                   # source_ids are relative to it (the folder of a single Parquet file)

    def fingerprint(self) -> SourceFingerprint:
        """Hash of what defines the source's content for us: item ids, sizes and the class vocabulary."""
        h = hashlib.sha256(json.dumps([self.format, self.class_ids, self.class_names]).encode())
        for item in sorted(self.items, key=lambda i: i.index):  # the same for the listing in any order
            h.update(f"\n{item.source_id}\t{item.size}\t{item.label}".encode())
        return SourceFingerprint(uri=self.uri, format=self.format, num_items=len(self.items),
                                 num_classes=len(self.class_ids), sha256=h.hexdigest(), class_map=self.class_map)


# How shard_order ranks items; a sample set's manifest records it (sets made before it record "sorted").
SHARD_ORDER = "sha256(seed/source_id)"


def shard_order(listing: SourceListing, seed: int) -> SourceListing:
    """The listing with its items in the seeded random order that shards slice.

    A class-sorted listing makes each shard hold one or two classes, and a trainer shuffling a window of row
    groups then sees batches of a few classes out of 1,000. The order ranks sha256(f"{seed}/{source_id}"): it
    needs no RNG whose stream could change between library versions (resume must find the same shards), and
    adding items to a source leaves the others' relative order alone. `item.index` keeps the sorted position.
    Parquet sources pay for the mix with reads: a shard's items come from many source row groups.
    """
    key = lambda item: hashlib.sha256(f"{seed}/{item.source_id}".encode()).digest()  # noqa: E731
    return dataclasses.replace(listing, items=sorted(listing.items, key=key))


def list_source(uri: str, source_format: str = "auto", class_map: str | None = None,
                storage_options: Mapping[str, Any] | None = None) -> SourceListing:
    """List every candidate image of the source, sorted; raise SourceError if there is none."""
    if source_format not in SOURCE_FORMATS:
        raise SourceError(f"source format must be one of {SOURCE_FORMATS}, got {source_format!r}")
    fs, root = open_filesystem(uri, storage_options)
    try:
        if not fs.exists(root):
            raise SourceError(f"source {uri!r} does not exist")
        is_file = fs.isfile(root)
        entries = {root: fs.info(root)} if is_file else fs.find(root, withdirs=True, detail=True)
    except storage_errors() as e:
        raise StorageError(f"cannot list source {uri!r}: {describe_storage_error(uri, e)}") from e
    if source_format == "auto":
        names = [p for p, info in entries.items() if info.get("type") != "directory"]
        has_images = any(p.lower().endswith(IMAGE_EXTENSIONS) for p in names)
        source_format = "parquet" if not has_images and any(p.endswith(".parquet") for p in names) else "imagefolder"
    if source_format == "parquet":
        listing = _list_parquet(fs, root, entries, uri, class_map, storage_options)
    else:
        listing = _list_image_folder(fs, root, entries, uri, class_map, storage_options)
    if not listing.items:
        expected = "Parquet files with an image column" if source_format == "parquet" else "<class>/<image> folders"
        raise SourceError(f"source {uri!r} has no images (expected {expected}; "
                          f"skipped: {listing.skipped.reasons or 'nothing'})")
    return listing


def _class_names(class_ids: list[str], class_map: str | None, storage_options) -> list[str]:
    mapping: ClassMap | None = load_class_map(class_map, class_ids, storage_options) if class_map else None
    return resolve_class_names(class_ids, mapping, map_name=f"class map {class_map!r}" if class_map else "class map")


def _list_image_folder(fs, root: str, entries: dict, uri: str, class_map: str | None, storage_options) -> SourceListing:
    skipped = ReasonCounts()
    class_dirs: set[str] = set()
    files: list[tuple[str, str, int]] = []  # (class id, relative path, size)
    for path, info in entries.items():
        rel = posixpath.relpath(path, root)
        if rel == ".":
            continue
        parts = rel.split("/")
        if info.get("type") == "directory":
            if len(parts) == 1 and not parts[0].startswith(".") and _is_utf8(parts[0]):
                class_dirs.add(parts[0])
            continue
        if not _is_utf8(rel):
            skipped.add("non_utf8_name", example=escaped_path(rel))
            log.warning("skipping %s: its name is not UTF-8", escaped_path(rel))
        elif any(p.startswith(".") for p in parts):
            skipped.add("hidden_file")
        elif len(parts) == 1:
            skipped.add("outside_class_folder")
        elif not rel.lower().endswith(IMAGE_EXTENSIONS):
            skipped.add("not_an_image")
        else:
            class_dirs.add(parts[0])
            files.append((parts[0], rel, int(info.get("size") or 0)))
    populated = {c for c, _, _ in files}
    empty = sorted(class_dirs - populated)
    if empty and files:
        # torchvision's ImageFolder refuses these too: an empty folder would still be a class (a label no
        # item has, one more zero-shot prompt) and would shift the label of every class after it.
        raise SourceError(f"source {uri!r} has class folders with no images: {[escaped_path(c) for c in empty][:10]}"
                          f"{'...' if len(empty) > 10 else ''}; remove them (or add images): an empty folder would "
                          f"still count as a class")
    class_ids = sorted(class_dirs)
    index = {c: i for i, c in enumerate(class_ids)}
    items = [SourceItem(i, rel, posixpath.join(root, rel), index[c], size)
             for i, (c, rel, size) in enumerate(sorted(files, key=lambda f: f[1]))]
    names = _class_names(class_ids, class_map, storage_options) if class_ids else []
    return SourceListing(to_uri(fs, root), "imagefolder", class_ids, names, items, skipped, class_map=class_map)


def _pick_column(schema: pa.Schema, candidates: tuple[str, ...], what: str, path: str) -> str:
    for name in candidates:
        if name in schema.names:
            return name
    raise SourceError(f"Parquet file {path!r} has no {what} column (looked for {list(candidates)}; has {schema.names})")


def _hf_label_names(schema: pa.Schema, column: str) -> list[str] | None:
    """ClassLabel names from Hugging Face `datasets` metadata, if the file carries them."""
    try:
        features = json.loads(schema.metadata[b"huggingface"])["info"]["features"]
        names = features[column].get("names")
        return [str(n) for n in names] if names else None
    except (KeyError, TypeError, ValueError, AttributeError):
        return None


def _list_parquet(fs, root: str, entries: dict, uri: str, class_map: str | None, storage_options) -> SourceListing:
    paths = sorted(p for p, info in entries.items() if info.get("type") != "directory" and p.endswith(".parquet"))
    base = posixpath.dirname(root) if len(entries) == 1 and paths == [root] else root
    rows: list[tuple[str, str, int, int, Any, int, int]] = []  # (rel file, path, group, row, label, size, file row)
    image_column = label_column = None
    label_names: list[str] | None = None
    skipped = ReasonCounts()
    for path in paths:
        if not _is_utf8(path):
            skipped.add("non_utf8_name", example=escaped_path(posixpath.relpath(path, base)))
            continue
        try:
            with fs.open(path, "rb") as f:
                pf = pq.ParquetFile(f)
                schema = pf.schema_arrow
                image_column = image_column or _pick_column(schema, _IMAGE_COLUMNS, "image", path)
                label_column = label_column or _pick_column(schema, _LABEL_COLUMNS, "label", path)
                label_names = label_names or _hf_label_names(schema, label_column)
                labels = pf.read(columns=[label_column]).column(0).to_pylist()
                sizes = [pf.metadata.row_group(g).num_rows for g in range(pf.num_row_groups)]
        except (OSError, pa.ArrowException):
            skipped.add("unreadable_parquet_file")
            continue
        rel = posixpath.relpath(path, base)
        size = int(entries[path].get("size") or 0)
        offset = 0
        for group, n in enumerate(sizes):
            for row in range(n):
                label = labels[offset + row]
                if label is None:
                    skipped.add("missing_label")
                else:
                    rows.append((rel, path, group, row, label, size, offset + row))
            offset += n
    if not rows:
        return SourceListing(to_uri(fs, root), "parquet", [], [], [], skipped, image_column, class_map, to_uri(fs, base))
    if all(isinstance(r[4], str) for r in rows):
        class_ids = sorted({r[4] for r in rows})
        index = {c: i for i, c in enumerate(class_ids)}
        names = _class_names(class_ids, class_map, storage_options)
        label_of = lambda v: index[v]  # noqa: E731
    else:
        num = max(int(r[4]) for r in rows) + 1
        if class_map is None and label_names is None:
            raise SourceError(f"Parquet source {uri!r} has integer labels but no class names: pass a class map "
                              "(JSON list, CSV `label,name`, or one name per line)")
        num = max(num, len(label_names or []))
        class_ids = [str(i) for i in range(num)]
        names = _class_names(class_ids, class_map, storage_options) if class_map else list(label_names)
        if len(names) < num:
            raise SourceError(f"Parquet source {uri!r} has label {num - 1} but only {len(names)} class names")
        label_of = int
    items = [SourceItem(i, f"{rel}#{file_row}", path, label_of(label), size, group, row)
             for i, (rel, path, group, row, label, size, file_row) in enumerate(rows)]
    return SourceListing(to_uri(fs, root), "parquet", class_ids, names, items, skipped, image_column, class_map,
                         to_uri(fs, base))

