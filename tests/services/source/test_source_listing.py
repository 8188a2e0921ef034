"""Listing sources: stable order and ids, class names, skips with reasons, Parquet, S3."""
import json
import os
import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import s3fs

from services.source import ReadSpec, SourceError, list_source, read_items
from services.source.class_map import ClassMapError


def test_image_folder_items_are_sorted_with_torchvision_labels(tiny_image_folder):
    listing = list_source(str(tiny_image_folder))
    assert listing.format == "imagefolder"
    assert listing.class_ids == ["n01440764", "n01443537", "n02123045"]
    assert listing.class_names == ["tench", "goldfish", "tabby cat"]  # wnids -> CLIP's ImageNet names
    ids = [i.source_id for i in listing.items]
    assert ids == sorted(ids) and len(ids) == 12 and ids[0] == "n01440764/img_000.jpg"
    assert [i.label for i in listing.items] == [0] * 4 + [1] * 4 + [2] * 4
    assert [i.index for i in listing.items] == list(range(12))


def test_fingerprint_is_stable_across_url_forms_and_changes_with_content(tiny_image_folder, tmp_path, image_writer):
    a = list_source(str(tiny_image_folder)).fingerprint()
    b = list_source(f"file://{tiny_image_folder}").fingerprint()
    assert a.sha256 == b.sha256 and a.num_items == 12 and a.num_classes == 3
    copy = shutil.copytree(tiny_image_folder, tmp_path / "copy")
    image_writer(copy / "n01440764" / "extra.jpg", seed=999)
    assert list_source(str(copy)).fingerprint().sha256 != a.sha256


def test_odd_files_are_skipped_or_listed_for_the_reader_to_count(tmp_path, image_writer):
    root = tmp_path / "src"
    image_writer(root / "dog" / "a.jpg", 1)
    (root / "dog" / "notes.txt").write_text("not an image")
    (root / "dog" / ".hidden.jpg").write_bytes(b"x")
    (root / "README.md").write_text("top-level file")
    (root / "cat").mkdir()
    (root / "cat" / "zero.jpg").write_bytes(b"")
    os.symlink(root / "nowhere.jpg", root / "cat" / "broken.jpg")
    listing = list_source(str(root))
    assert listing.class_ids == ["cat", "dog"]
    assert listing.class_names == ["cat", "dog"]
    assert listing.skipped.reasons == {"not_an_image": 1, "hidden_file": 1, "outside_class_folder": 1}
    assert [i.source_id for i in listing.items] == ["cat/broken.jpg", "cat/zero.jpg", "dog/a.jpg"]
    results = read_items(ReadSpec.for_listing(listing, 16), listing.items)
    assert [r.error for r in results] == ["unreadable", "empty_file", None]


def test_non_utf8_file_names_are_skipped_and_counted_shown_escaped(tmp_path, image_writer):
    root = tmp_path / "src"
    image_writer(root / "dog" / "a.jpg", 1)
    image_writer(root / "cat" / "b.jpg", 2)
    (root / "dog" / "a.jpg").rename(os.fsdecode(os.fsencode(root / "dog") + b"/caf\xe9.jpg"))
    image_writer(root / "dog" / "c.jpg", 3)
    os.makedirs(os.fsencode(root) + b"/\xffbad")  # a class folder whose name is not UTF-8
    with open(os.fsencode(root) + b"/\xffbad/x.jpg", "wb") as f:
        f.write((root / "cat" / "b.jpg").read_bytes())
    listing = list_source(str(root))
    assert [i.source_id for i in listing.items] == ["cat/b.jpg", "dog/c.jpg"] and listing.class_ids == ["cat", "dog"]
    assert listing.skipped.reasons == {"non_utf8_name": 2}
    assert sorted(listing.skipped.examples["non_utf8_name"]) == ["\\xffbad/x.jpg", "dog/caf\\xe9.jpg"]
    assert listing.fingerprint().num_items == 2  # hashing the listing no longer meets the bad name


def test_empty_class_folder_is_refused_like_torchvision(tmp_path, image_writer):
    root = tmp_path / "src"
    image_writer(root / "dog" / "a.jpg", 1)
    (root / "empty_class").mkdir()
    (root / "notes").mkdir()
    (root / "notes" / "readme.txt").write_text("no images here either")
    with pytest.raises(SourceError, match=r"class folders with no images: \['empty_class', 'notes'\]"):
        list_source(str(root))


def test_source_without_images_fails_with_a_message_naming_it(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.txt").write_text("no")
    with pytest.raises(SourceError, match=str(tmp_path)):
        list_source(str(tmp_path))
    with pytest.raises(SourceError, match="does not exist"):
        list_source(str(tmp_path / "missing"))


@pytest.mark.parametrize("file_name, text", [
    ("map.json", json.dumps({"a_cls": "apple", "b_cls": "banana"})),
    ("map.json", json.dumps(["apple", "banana"])),
    ("map.csv", "folder,name\na_cls,apple\nb_cls,banana\n"),
    ("map.txt", "a_cls apple\nb_cls banana\n"),
    ("map.txt", "apple\nbanana\n"),
])
def test_class_map_files_name_the_classes(tmp_path, image_writer, file_name, text):
    for c in ("a_cls", "b_cls"):
        image_writer(tmp_path / "src" / c / "1.jpg", 1)
    (tmp_path / file_name).write_text(text)
    listing = list_source(str(tmp_path / "src"), class_map=str(tmp_path / file_name))
    assert listing.class_names == ["apple", "banana"]


def test_class_map_missing_a_class_is_an_error(tmp_path, image_writer):
    for c in ("a_cls", "b_cls"):
        image_writer(tmp_path / "src" / c / "1.jpg", 1)
    (tmp_path / "map.json").write_text(json.dumps({"a_cls": "apple"}))
    with pytest.raises(ClassMapError, match="b_cls"):
        list_source(str(tmp_path / "src"), class_map=str(tmp_path / "map.json"))


def _parquet_dataset(path, images, labels, names=None, row_group_size=2):
    table = pa.table({"image": [{"bytes": b, "path": f"{i}.jpg"} for i, b in enumerate(images)], "label": labels})
    if names is not None:  # Hugging Face datasets' ClassLabel metadata
        features = {"image": {"_type": "Image"}, "label": {"names": names, "_type": "ClassLabel"}}
        table = table.replace_schema_metadata({"huggingface": json.dumps({"info": {"features": features}})})
    pq.write_table(table, path, row_group_size=row_group_size)


def test_parquet_source_with_hugging_face_class_labels(tmp_path, image_writer):
    jpgs = [image_writer(tmp_path / f"{i}.jpg", i).read_bytes() for i in range(5)]
    (tmp_path / "ds").mkdir()
    _parquet_dataset(tmp_path / "ds" / "train-0.parquet", jpgs[:3], [0, 1, 0], names=["cat", "dog"])
    _parquet_dataset(tmp_path / "ds" / "train-1.parquet", jpgs[3:] + [b"broken"], [1, 1, 0], names=["cat", "dog"])
    listing = list_source(str(tmp_path / "ds"))
    assert listing.format == "parquet" and listing.class_names == ["cat", "dog"]
    assert [i.source_id for i in listing.items] == [f"train-{f}.parquet#{r}" for f, n in ((0, 3), (1, 3)) for r in range(n)]
    assert [i.label for i in listing.items] == [0, 1, 0, 1, 1, 0]
    results = read_items(ReadSpec.for_listing(listing, 16), listing.items)
    assert [r.error for r in results] == [None] * 5 + ["corrupt"]


def test_parquet_with_integer_labels_needs_class_names(tmp_path, image_writer):
    jpg = image_writer(tmp_path / "a.jpg", 1).read_bytes()
    _parquet_dataset(tmp_path / "one.parquet", [jpg, jpg], [0, 1])
    with pytest.raises(SourceError, match="class map"):
        list_source(str(tmp_path / "one.parquet"))
    (tmp_path / "names.txt").write_text("cat\ndog\n")
    listing = list_source(str(tmp_path / "one.parquet"), class_map=str(tmp_path / "names.txt"))
    assert listing.class_names == ["cat", "dog"] and [i.source_id for i in listing.items] == ["one.parquet#0", "one.parquet#1"]


def test_image_folder_on_s3_lists_and_reads_like_local(s3_server, tiny_image_folder):
    _, options = s3_server
    fs = s3fs.S3FileSystem(**options)
    fs.put(str(tiny_image_folder), "dad-test/listing-src", recursive=True)
    listing = list_source("s3://dad-test/listing-src", storage_options=options)
    local = list_source(str(tiny_image_folder))
    assert [i.source_id for i in listing.items] == [i.source_id for i in local.items]
    assert listing.fingerprint().sha256 == local.fingerprint().sha256
    results = read_items(ReadSpec.for_listing(listing, 16, storage_options=options), listing.items[:3])
    assert all(r.error is None for r in results)
