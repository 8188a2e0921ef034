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
