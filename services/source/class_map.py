"""Class names for a source: from a mapping file, from ImageNet WordNet ids, or from the folder names.

The teacher is a zero-shot classifier, so it needs words ("tabby cat"), not ids ("n02123045"). Mapping
files may be JSON (`{"id": "name"}` or `["name", ...]`), CSV (`id,name` rows, optional header) or text
(`id name words` per line, like ImageNet's LOC_synset_mapping.txt, or one name per line in class order).
"""
from __future__ import annotations

import csv
import io
import json
from typing import Any, Mapping, Sequence

from services.storage import StorageError, describe_storage_error, open_filesystem, storage_errors

ClassMap = dict[str, str] | list[str]

_CSV_HEADER_WORDS = {"id", "class", "class_id", "folder", "wnid", "label", "synset"}


class ClassMapError(ValueError):
    """A mapping file that cannot be read or does not cover the source's classes."""


def load_class_map(uri: str, known_ids: Sequence[str], storage_options: Mapping[str, Any] | None = None) -> ClassMap:
    """Read a mapping file; `known_ids` (the source's class ids) disambiguates text files."""
    fs, path = open_filesystem(uri, storage_options)
    try:
        text = fs.cat_file(path).decode("utf-8-sig")
    except (*storage_errors(), UnicodeDecodeError) as e:
        raise StorageError(f"cannot read class map {uri!r}: {describe_storage_error(uri, e)}") from e
    return parse_class_map(text, uri, known_ids)


def parse_class_map(text: str, name: str, known_ids: Sequence[str]) -> ClassMap:
    known = set(known_ids)
    lower = name.lower()
    if lower.endswith(".json"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ClassMapError(f"class map {name!r} is not valid JSON: {e}") from None
        if isinstance(data, dict):
            return {str(k): str(v) for k, v in data.items()}
        if isinstance(data, list):
            return [str(v) for v in data]
        raise ClassMapError(f"class map {name!r} must be a JSON object {{id: name}} or a list of names")
    if lower.endswith(".csv"):
        rows = [r for r in csv.reader(io.StringIO(text)) if r and any(c.strip() for c in r)]
        if rows and rows[0][0].strip().lower() in _CSV_HEADER_WORDS:
            rows = rows[1:]
        if not rows or any(len(r) < 2 for r in rows):
            raise ClassMapError(f"class map {name!r} must have rows `id,name`")
        return {r[0].strip(): r[1].strip() for r in rows}
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if not lines:
        raise ClassMapError(f"class map {name!r} is empty")
    if all(line.split(maxsplit=1)[0] in known and len(line.split(maxsplit=1)) == 2 for line in lines):
        return {line.split(maxsplit=1)[0]: line.split(maxsplit=1)[1] for line in lines}
    return lines  # one name per line, in class order


def resolve_class_names(class_ids: Sequence[str], class_map: ClassMap | None = None,
                        map_name: str = "class map") -> list[str]:
    """Names for `class_ids`, in order: mapping file > ImageNet wnids > the ids with '_' as spaces."""
    if isinstance(class_map, list):
        if len(class_map) != len(class_ids):
            raise ClassMapError(f"{map_name} lists {len(class_map)} names but the source has {len(class_ids)} classes")
        return list(class_map)
    if isinstance(class_map, dict):
        missing = [c for c in class_ids if c not in class_map]
        if missing:
            raise ClassMapError(f"{map_name} has no name for classes {missing[:10]}"
                                + (f" (and {len(missing) - 10} more)" if len(missing) > 10 else ""))
        return [class_map[c] for c in class_ids]
    from dad_core.imagenet import all_imagenet_wnids, classnames_for_wnids  # (importing dad_core loads torch)

    if all_imagenet_wnids(class_ids):
        return classnames_for_wnids(class_ids)
    return [c.replace("_", " ") for c in class_ids]
