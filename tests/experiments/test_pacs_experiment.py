"""The PACS experiment's orchestration, run end to end on a small synthetic stand-in for PACS.

Tests never need ../shared: three "domains" are drawn on the fly (photo-like fills, sketch-like outlines).
"""
import json
import shutil
import sqlite3
import subprocess
import sys

import pytest

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
    args = ["--pacs", str(pacs), "--out", str(out), "--image-size", "32", "--variants", "kd,dad",
            "--seeds", "1", "--grid", "l2:0.1,linf:0.03", "--epochs", "1", "--grid-epochs", "1", "--vq-epochs", "1",
            "--batch-size", "16", "--student", "test_resnet", "--teacher-arch", "test_resnet", "--vq-config", "demo-vq",
            "--threads", "1"]
    assert main(args) == 0
    report = json.loads((out / "report.json").read_text())
    assert set(report["table"]) == {"teacher", "kd", "dad"} and len(report["table"]["dad"]["photo"]) == 1
    assert set(report["table"]["dad"]) >= {"photo", "art_painting", "cartoon", "shift_avg"}
    # the grid: one sample set and one val-scored DAD student per point; the best val point made the students' set
    grid = report["grid"]
    assert [(p["norm"], p["step_size"]) for p in grid] == [("l2", 0.1), ("linf", 0.03)]
    best = max(grid, key=lambda p: p["photo_val_top1"])
    assert (report["attack"]["norm"], report["attack"]["step_size"], report["attack"]["epsilon"]) == \
        (best["norm"], best["step_size"], best["step_size"])
    assert grid[1]["l2_size"] == pytest.approx(0.03 * (3 * 32 * 32) ** 0.5)
    # paired tests: DAD - KD on every domain and the shift average, with an interval around the difference
    dad_kd = report["paired_tests"]["dad - kd"]
    assert set(dad_kd) == {"photo", "art_painting", "cartoon", "shift avg"}
    for r in dad_kd.values():
        assert r["ci95"][0] <= r["difference"] <= r["ci95"][1] and 0 < r["p_value"] <= 1 and r["seeds"] == 1
    assert set(report["teacher_val"]) == {"photo", "art_painting", "cartoon"}
    assert set(report["vq_code_usage"]) >= {"photo", "cartoon"}
    md = (out / "report.md").read_text()
    assert "`dad` − `kd`" in md and "## What this shows" in md and "Teacher beats every student" in md
    for name in ("report.md", "results_bar.png", "samples_grid.png", "attack_grid.png"):
        assert (out / name).stat().st_size > 0
    # a re-run reuses every stage (same configurations)
    assert main(args) == 0
    assert all(t["reused"] for t in json.loads((out / "report.json").read_text())["timings"].values())
    # and the control plane's catalog lists the experiment's runs and results
    subprocess.run([sys.executable, "-m", "services.api.catalog", "rebuild", "--store", str(out / "store"),
                    "--database", f"sqlite:///{tmp_path / 'c.db'}"], check=True)
    db = sqlite3.connect(tmp_path / "c.db")
    # every job the experiment started: teacher, 2 grid sets + their DAD students, 2 students, 4 evals; + report
    assert db.execute("select count(*) from runs").fetchone()[0] == 1 + 2 + 2 + 2 + 4 + 1
    # each with its real, typed run config (started through services.api.launch, as the API starts jobs)
    grid_sets = [json.loads(p.read_text()) for p in (out / "store" / "runs").glob("samples-*/run.json")]
    assert sorted(r["config"]["overrides"]["attack.step_size"] for r in grid_sets) == [0.03, 0.1]
    assert all(r["kind"] == "generate" and r["job"]["source"].endswith("photo/train") for r in grid_sets)
    # the report run holds the latest report (the re-run rewrote it)
    assert (out / "store" / "runs" / "pacs-report" / "report.md").read_text() == (out / "report.md").read_text()
    assert db.execute("select count(*) from results").fetchone()[0] == 3 * 3 + 3  # test x 3 domains, teacher val


def test_a_bad_grid_or_attack_is_refused_naming_it(capsys):
    with pytest.raises(SystemExit):
        main(["--pacs", "x", "--grid", "l3:0.1"])
    assert "NORM:STEP" in capsys.readouterr().err
