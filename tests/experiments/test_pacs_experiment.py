"""The PACS experiment's orchestration, run end to end on a small synthetic stand-in for PACS.

Tests never need ../shared: three "domains" are drawn on the fly (photo-like fills, sketch-like outlines).
"""
import json
import shutil
import sqlite3
import subprocess
import sys

from experiments.pacs import main
from experiments.report import attack_summary
from experiments.splits import materialise_splits, split_of
from services.demo.synthetic import make_dataset


def test_splits_are_deterministic_disjoint_and_cover_every_file(tmp_path):
    make_dataset(tmp_path / "src", per_class=10, size=16, splits={"all": 1.0})
    fractions = {"train": 0.7, "val": 0.1, "test": 0.2}
    counts = materialise_splits(tmp_path / "src" / "photo" / "all", tmp_path / "a", fractions)
    again = materialise_splits(tmp_path / "src" / "photo" / "all", tmp_path / "b", fractions)
    assert counts == again and sum(counts.values()) == 40
    names = {s: {p.name for p in (tmp_path / "a" / s).rglob("*.png")} for s in fractions}
    assert not (names["train"] & names["test"]) and not (names["train"] & names["val"])
    assert split_of("dog/1.jpg", fractions) == split_of("dog/1.jpg", fractions)


def test_the_report_says_which_attack_made_the_samples():
    new = {"steps": 1, "step_size": 0.1, "norm": "l2", "epsilon": 0.1, "random_start": 0.8, "grad": "auto",
           "through_discretizer": False, "seed": 0}
    assert attack_summary(new) == "1 step(s) of 0.1 (l2 direction), l2 ball of radius 0.1, random start with p 0.8"
    old = {"steps": 1, "step_size": 0.03, "grad": "sign", "epsilon": None, "random_start": False,
           "through_discretizer": False, "seed": 0}  # a set made before attack.norm existed
    assert attack_summary(old) == "1 step(s) of 0.03 (sign direction), no bound, random start with p 0"


def test_experiment_runs_every_stage_and_reports(tmp_path):
    src = tmp_path / "synthetic"
    make_dataset(src, per_class=40, size=32, splits={"all": 1.0})
    pacs = tmp_path / "pacs"
    for domain, drawn in (("photo", "photo"), ("art_painting", "sketch"), ("cartoon", "sketch")):
        shutil.copytree(src / drawn / "all", pacs / domain)
    out = tmp_path / "out"
    args = ["--pacs", str(pacs), "--out", str(out), "--image-size", "32", "--objectives", "ce,dad",
            "--epochs", "1", "--teacher-epochs", "1", "--vq-epochs", "1", "--batch-size", "16",
            "--student", "test_resnet", "--teacher-arch", "test_resnet"]
    assert main(args) == 0
    report = json.loads((out / "report.json").read_text())
    assert set(report["table"]) == {"teacher", "ce", "dad"}
    assert set(report["table"]["dad"]) >= {"photo", "art_painting", "cartoon", "shift_avg"}
    assert 0 <= report["acceptance_rate"] <= 1 and set(report["vq_psnr_db"]) >= {"photo", "cartoon"}
    assert (report["attack"]["norm"], report["attack"]["epsilon"], report["attack"]["random_start"]) == ("l2", 0.1, 0.8)
    assert "l2 ball of radius 0.1" in (out / "report.md").read_text()
    assert {"train pacs-teacher", "vq", "generate", "train pacs-dad-s0"} <= set(report["timings_s"])
    for name in ("report.md", "results_bar.png", "samples_grid.png"):
        assert (out / name).stat().st_size > 0
    # a re-run skips every finished stage
    assert main(args) == 0
    # and the control plane's catalog lists the experiment's runs and results
    subprocess.run([sys.executable, "-m", "services.api.catalog", "rebuild", "--store", str(out / "store"),
                    "--database", f"sqlite:///{tmp_path / 'c.db'}"], check=True)
    db = sqlite3.connect(tmp_path / "c.db")
    assert db.execute("select count(*) from runs").fetchone()[0] == 6  # teacher, 2 students, 3 evaluations
    assert db.execute("select count(*) from results").fetchone()[0] == 9  # 3 models x 3 domains
