"""The per-worker loop without Ray (train_worker in this process): resume, export, S3, no teacher in memory."""
import json

import pytest
import timm
import torch

import services.trainer.loop as loop
from services.trainer.checkpointing import RunStore
from services.trainer.loop import train_worker
from services.trainer.metrics import read_metrics

S3_BUCKET = "dad-test"  # the bucket tests/conftest.py's s3_server fixture creates


def test_dad_with_stored_logits_never_builds_a_teacher(train_config, monkeypatch):
    def no_teacher(*args, **kwargs):
        raise AssertionError("stored logits must not need a teacher in memory")

    monkeypatch.setattr(loop, "create_teacher", no_teacher)
    monkeypatch.setattr("dad_core.teachers.factory.create_teacher", no_teacher)
    summary = train_worker(train_config(objective="dad", teacher_logits="stored"))
    assert summary["epoch"] == 0 and summary["val_top1"] is not None


def test_a_rerun_resumes_from_the_last_checkpoint_and_appends_metrics(train_config):
    cfg = train_config(epochs=1, seed=3)
    train_worker(cfg)
    first = RunStore(cfg.out).latest()
    assert first["epoch"] == 1
    lines_before = (RunStore(cfg.out).path + "/metrics.jsonl")
    with open(lines_before) as f:
        before = f.read()

    longer = train_config(epochs=2, seed=3)
    summary = train_worker(longer)
    assert summary["epoch"] == 1 and RunStore(cfg.out).latest()["epoch"] == 2
    with open(lines_before) as f:
        after = f.read()
    assert after.startswith(before)  # appended, never rewritten
    records = [json.loads(line) for line in after.splitlines()]
    events = [r["event"] for r in records if r["type"] == "event"]
    assert events == ["start", "end", "resume", "end"]
    resume = next(r for r in records if r.get("event") == "resume")
    assert resume["epoch"] == 1 and resume["step"] == first["global_step"]
    epochs = [r["epoch"] for r in records if r["type"] == "epoch"]
    assert epochs == [0, 1]  # epoch 0 was not trained again
    steps = [r["step"] for r in records if r["type"] == "step"]
    assert steps == sorted(set(steps))  # no step logged twice
    assert len(read_metrics(cfg.out)) == len(records)


def test_a_killed_run_resumes_exactly_where_it_stopped(train_config, tmp_path, monkeypatch):
    """Model, optimizer, scheduler and RNG come back: kill + resume == one uninterrupted run."""
    train_worker(train_config(epochs=2, out=str(tmp_path / "straight"), hflip=True, objective="ce", samples=None))

    real_epoch = loop.train_one_epoch

    def killed_in_second_epoch(*args, **kwargs):
        if args[8] == 1:  # epoch
            raise KeyboardInterrupt("killed")
        return real_epoch(*args, **kwargs)

    killed = train_config(epochs=2, out=str(tmp_path / "killed"), hflip=True, objective="ce", samples=None)
    monkeypatch.setattr(loop, "train_one_epoch", killed_in_second_epoch)
    with pytest.raises(KeyboardInterrupt):
        train_worker(killed)
    monkeypatch.setattr(loop, "train_one_epoch", real_epoch)
    assert RunStore(killed.out).latest()["epoch"] == 1
    train_worker(killed)
    a = torch.load(tmp_path / "straight" / "model.pth")
    b = torch.load(tmp_path / "killed" / "model.pth")
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)


def test_exported_state_dict_loads_with_timm_and_gives_identical_outputs(train_config):
    cfg = train_config()
    train_worker(cfg)
    store = RunStore(cfg.out)
    ckpt = torch.load(f"{store.path}/checkpoints/epoch-0001.pt", weights_only=True)
    info = json.loads(open(f"{store.path}/model.json").read())
    assert info["student"] == "test_resnet" and info["num_classes"] == 3
    loaded = timm.create_model("test_resnet", num_classes=3, checkpoint_path=f"{store.path}/model.pth").eval()
    trained = timm.create_model("test_resnet", num_classes=3)
    trained.load_state_dict(ckpt["model"])
    x = torch.rand(2, 3, 32, 32)
    torch.testing.assert_close(loaded(x), trained.eval()(x), rtol=0, atol=0)


def test_reads_samples_from_and_checkpoints_to_s3(train_config, sample_set, s3_server):
    import s3fs

    _, options = s3_server
    fs = s3fs.S3FileSystem(**options)
    samples = f"s3://{S3_BUCKET}/samples/tiny"
    fs.put(str(sample_set.folder), samples, recursive=True)
    out = f"s3://{S3_BUCKET}/runs/dad-tiny"
    make = lambda epochs: train_config(samples=f"{samples}/manifest.json", out=out,  # noqa: E731
                                       storage_options=options, epochs=epochs, loader_workers=1)
    train_worker(make(1))
    names = {p.rsplit("/", 1)[-1] for p in fs.find(out)}
    assert {"model.pth", "model.json", "metrics.jsonl", "latest.json", "epoch-0001.pt"} <= names
    train_worker(make(2))  # resumes from S3
    assert RunStore(out, options).latest()["epoch"] == 2
    assert [r["event"] for r in read_metrics(out, options) if r["type"] == "event"] == ["start", "end", "resume", "end"]


@pytest.mark.parametrize("objective", ["ce", "dat"])
def test_objectives_without_a_teacher_train_from_the_source_alone(objective, train_config):
    summary = train_worker(train_config(objective=objective, samples=None, hflip=True, max_steps_per_epoch=2))
    assert summary["val_top1"] is not None


def test_a_mid_epoch_kill_and_resume_leave_no_duplicate_step_records(train_config, monkeypatch):
    cfg = train_config(epochs=2, objective="ce", samples=None, log_every=1)
    real_epoch = loop.train_one_epoch

    def killed_before_the_checkpoint(*args, **kwargs):
        result = real_epoch(*args, **kwargs)  # the epoch's steps are logged...
        if args[8] == 1:
            raise KeyboardInterrupt("killed")  # ...but its checkpoint is never written
        return result

    monkeypatch.setattr(loop, "train_one_epoch", killed_before_the_checkpoint)
    with pytest.raises(KeyboardInterrupt):
        train_worker(cfg)
    monkeypatch.setattr(loop, "train_one_epoch", real_epoch)
    train_worker(cfg)
    raw = [json.loads(line) for line in open(RunStore(cfg.out).path + "/metrics.jsonl")]
    steps = [r["step"] for r in raw if r["type"] == "step"]
    assert steps == sorted(set(steps)) and len(steps) > 2  # the file itself, not just readers, has no duplicates
    assert [r["event"] for r in raw if r["type"] == "event"] == ["start", "resume", "end"]
    assert [r["epoch"] for r in raw if r["type"] == "epoch"] == [0, 1]
