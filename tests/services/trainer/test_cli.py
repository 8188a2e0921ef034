"""The command line, and one real run through Ray Train (2 DDP workers on the session's local Ray)."""
import json
import subprocess
import sys

from services.trainer.cli import build_parser, main
from services.trainer.metrics import read_metrics


def test_help_explains_every_option():
    parser = build_parser()
    options = [a for a in parser._actions if a.option_strings and a.option_strings != ["-h", "--help"]]
    undocumented = [a.option_strings for a in options if not (a.help and len(a.help) > 2)]
    assert not undocumented
    text = subprocess.run([sys.executable, "-m", "services.trainer", "--help"], capture_output=True, text=True,
                          check=True).stdout
    for phrase in ("--teacher-logits", "stored", "online", "--randaugment", "--gpus-per-worker", "dat+dad",
                   "checkpoint_path"):
        assert phrase in text


def test_two_ray_train_workers_train_checkpoint_and_export(sample_set, tmp_path, ray_local, capsys):
    out = tmp_path / "run"
    args = ["--source", str(sample_set.source), "--samples", sample_set.manifest, "--out", str(out),
            "--preset", "tiny", "--student", "test_resnet", "--epochs", "1", "--batch-size", "4",
            "--workers", "2", "--cpus-per-worker", "0.5", "--loader-workers", "0", "--val-fraction", "0.2",
            "--warmup-epochs", "0", "--log-every", "1", "--no-progress"]
    assert main(args) == 0
    assert "val top-1" in capsys.readouterr().out
    records = read_metrics(str(out))
    start = records[0]
    assert start["event"] == "start" and start["world_size"] == 2
    steps = [r for r in records if r["type"] == "step"]
    assert steps and all({"loss", "ce", "kd_clean", "kd_adv", "lr", "images_per_s"} <= set(r) for r in steps)
    assert [r["epoch"] for r in records if r["type"] == "epoch"] == [0]
    assert (out / "model.pth").exists() and json.loads((out / "train_config.json").read_text())["workers"] == 2
    # the same command again: the run is complete, nothing is retrained
    assert main(args) == 0
    assert "nothing to train" in capsys.readouterr().out
    assert [r["epoch"] for r in read_metrics(str(out)) if r["type"] == "epoch"] == [0]


def test_relative_paths_are_resolved_before_the_workers_see_them(tmp_path, monkeypatch):
    # Ray Train workers run in Ray's own working directory: a relative --samples used to point nowhere.
    from services.trainer.cli import build_parser, config_from_args

    monkeypatch.chdir(tmp_path)
    args = build_parser().parse_args(["--source", "data/train", "--samples", "store/set/manifest.json",
                                      "--out", "runs/r1", "--val", "data/val", "--preset", "tiny"])
    cfg = config_from_args(args)
    assert (cfg.source, cfg.samples, cfg.out, cfg.val) == (
        str(tmp_path / "data/train"), str(tmp_path / "store/set/manifest.json"), str(tmp_path / "runs/r1"),
        str(tmp_path / "data/val"))
