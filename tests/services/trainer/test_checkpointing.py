import random

import numpy as np
import pytest
import torch

from services.trainer.checkpointing import RunStore, capture_rng, restore_rng


def draws():
    return torch.rand(3).tolist(), np.random.rand(3).tolist(), [random.random() for _ in range(3)]


def test_rng_state_round_trips_through_a_weights_only_checkpoint(tmp_path):
    store = RunStore(str(tmp_path))
    torch.manual_seed(1), np.random.seed(1), random.seed(1)
    store.save({"rng": [capture_rng()]}, epoch=1, global_step=5)
    expected = draws()
    restore_rng(store.load(store.latest())["rng"][0])  # weights_only=True load
    assert draws() == expected


def test_latest_points_at_the_newest_and_old_checkpoints_are_pruned(tmp_path):
    store = RunStore(str(tmp_path))
    assert store.latest() is None
    for epoch in range(1, 5):
        store.save({"model": {"w": torch.full((2,), float(epoch))}}, epoch=epoch, global_step=10 * epoch)
    assert store.latest() == {"epoch": 4, "path": "checkpoints/epoch-0004.pt", "global_step": 40}
    assert sorted(p.name for p in (tmp_path / "checkpoints").glob("*.pt")) == ["epoch-0003.pt", "epoch-0004.pt"]
    assert store.load(store.latest())["model"]["w"].tolist() == [4.0, 4.0]


def test_a_corrupt_latest_pointer_is_named(tmp_path):
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "latest.json").write_text("{")
    with pytest.raises(ValueError, match="latest.json is corrupt"):
        RunStore(str(tmp_path)).latest()


def test_saved_config_leaves_out_storage_credentials(tmp_path):
    store = RunStore(str(tmp_path))
    store.write_config({"out": "s3://b/run", "storage_options": {"secret": "hunter2"}})
    assert store.read_config() == {"out": "s3://b/run"}
