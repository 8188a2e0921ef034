"""Shard verification runs once per set: a marker keyed by the set's URI and manifest digest remembers a pass
while every shard keeps its size and modification stamp; a rewritten shard is hashed (and caught) again."""
from __future__ import annotations

import os
import shutil
from types import SimpleNamespace

import pytest

from benchmarks.scale import fabricate
from services.sample_store import load_manifest
from services.trainer.preflight import TrainInputError, verified_dir, verify_shards


@pytest.fixture
def written_set(tmp_path, monkeypatch):
    monkeypatch.setenv("DAD_CACHE_DIR", str(tmp_path / "cache"))
    return fabricate(tmp_path / "store", 60, 5, shard_items=20)  # 3 shards, through the real writer


def _verify(folder):
    lines = []
    verify_shards(load_manifest(str(folder)), SimpleNamespace(samples=str(folder), storage_options={}), lines.append)
    return lines


def test_a_verified_set_is_not_hashed_again_until_a_shard_changes(written_set, tmp_path):
    first = _verify(written_set)
    assert first[0].startswith("verifying 3 shards") and first[-1].startswith("verified 3 shards")
    assert len(list(verified_dir().glob("*.json"))) == 1
    assert _verify(written_set)[0].startswith("shards verified on")  # remembered: nothing hashed

    shard = sorted((written_set / "shards").glob("*.parquet"))[1]
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, other content, new modification time
    shard.write_bytes(bytes(data))
    os.utime(shard, ns=(shard.stat().st_atime_ns, shard.stat().st_mtime_ns + 1_000_000))
    with pytest.raises(TrainInputError, match=f"shards/{shard.name}.*corrupt"):
        _verify(written_set)


def test_a_copy_elsewhere_is_verified_on_its_own(written_set, tmp_path):
    _verify(written_set)
    copy = shutil.copytree(written_set, tmp_path / "copy")  # same manifest and stamps, another place
    assert _verify(copy)[0].startswith("verifying 3 shards")
    assert _verify(copy)[0].startswith("shards verified on")


def test_an_unwritable_cache_only_means_hashing_again(written_set, tmp_path, monkeypatch):
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("DAD_CACHE_DIR", str(tmp_path / "file"))  # a file: no folder can be made under it
    assert _verify(written_set)[-1].startswith("verified 3 shards")
    assert _verify(written_set)[0].startswith("verifying 3 shards")
