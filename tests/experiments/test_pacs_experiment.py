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
    args = ["--pacs", str(pacs), "--out", str(out), "--image-size", "32", "--variants", "kd,dad,dad-qq",
            "--seeds", "2", "--grid", "l2:0.5", "--epochs", "1", "--grid-epochs", "1", "--vq-epochs", "1",
            "--teacher-epochs", "2", "--batch-size", "16", "--student", "test_resnet", "--teacher-arch", "test_resnet",
            "--vq-config", "demo-vq", "--threads", "1", "--extra-domain", f"sketchy={src / 'sketch' / 'all'}"]
    assert main(args) == 0
    report = json.loads((out / "report.json").read_text())
    assert set(report["table"]) == {"teacher", "kd", "dad", "dad-qq"} and len(report["table"]["dad"]["photo"]) == 2
    assert set(report["table"]["dad"]) >= {"photo", "art_painting", "cartoon", "sketchy", "shift_avg"}
    # the shift average is art_painting + cartoon; the extra domain is reported beside it, not in it
    dad = report["table"]["dad"]
    assert dad["shift_avg"] == pytest.approx([(a + c) / 2 for a, c in zip(dad["art_painting"], dad["cartoon"])])
    # the grid: one set per attack, one DAD student per filter, scored on art_painting VAL; the best picked
    grid = report["grid"]
    assert [(p["step_size"], p["filter"], p["rows"]) for p in grid] == [(0.5, "on", "accepted"), (0.5, "off", "all")]
    best = max(grid, key=lambda p: p["selection_val_top1"])
    assert (report["chosen"]["filter"], report["chosen"]["step_size"]) == (best["filter"], 0.5)
    assert report["attack"]["step_size"] == report["attack"]["epsilon"] == 0.5
    assert all(p["codes_vs_qx"] is not None and 0 <= p["codes_vs_qx"] <= 1 for p in grid)
    grid_runs = [json.loads(p.read_text()) for p in (out / "store" / "runs").glob("grid-dad-*/run.json")]
    assert sorted(r["config"]["adversarial_rows"] for r in grid_runs) == ["accepted", "all"]
    assert all(r["config"]["val"].endswith("art_painting/val") for r in grid_runs)
    # the Q(Q(x)) control: the same code path with attack.steps=0, so no delta and no code moved off Q(Q(x))
    qq = report["sets"]["qq"]
    assert qq["delta_l2"] == 0 and qq["codes_vs_qqx"] == 0
    qq_run = json.loads(next((out / "store" / "runs").glob("samples-qq-*/run.json")).read_text())
    assert qq_run["config"]["overrides"]["attack.steps"] == 0
    # dad-qq trains on that set, with the chosen filter's rows
    qq_students = [json.loads(p.read_text()) for p in (out / "store" / "runs").glob("dad-qq-s*/run.json")]
    assert len(qq_students) == 2 and {r["config"]["sample_set"] for r in qq_students} == {qq_run["id"]}
    assert {r["config"]["adversarial_rows"] for r in qq_students} == {report["chosen"]["rows"]}
    # the mechanism check: x, Q(x), Q(Q(x)) once, all and accepted Q(x') per grid point, to each val split
    mech = report["mechanism"]
    assert [r["set"] for r in mech["rows"]][:4] == ["x", "Q(x)", "Q(Q(x))", "all Q(x')"]
    assert set(mech["targets"]) == {"art_painting", "cartoon", "photo"}
    assert all(r["fd"]["cartoon"] >= 0 for r in mech["rows"])
    # the declared contrasts: primaries first, each with a t-interval over its 2 seeds and Holm-adjusted p
    contrasts = report["contrasts"]
    assert [k for k, v in contrasts.items() if v["family"] == "primary"] == ["dad - kd", "dad - dad-qq"]
    for r in contrasts.values():
        lo, hi = r["t"]["ci95"]
        assert lo <= r["difference"] <= hi and r["seeds"] == 2 and r["holm_all"] >= r["t"]["p_value"]
    assert set(report["paired_tests"]["dad - kd"]) == {"photo", "art_painting", "cartoon", "sketchy", "shift avg"}
    assert set(report["teacher_val"]) == {"photo", "art_painting", "cartoon"}
    assert set(report["q"]) == {"teacher domains"} and set(report["q"]["teacher domains"]["code_usage"]) >= {"cartoon"}
    md = (out / "report.md").read_text()
    for text in ("## Declared contrasts", "| primary |", "## What this shows", "**Primary**", "Teacher beats every",
                 "## Mechanism check", "sketchy"):
        assert text in md, text
    for name in ("report.md", "results_bar.png", "samples_grid.png", "attack_grid.png"):
        assert (out / name).stat().st_size > 0
    # a re-run reuses every stage (same configurations), the mechanism check included
    assert main(args) == 0
    assert all(t["reused"] for t in json.loads((out / "report.json").read_text())["timings"].values())
    # and the control plane's catalog lists the experiment's runs and results
    subprocess.run([sys.executable, "-m", "services.api.catalog", "rebuild", "--store", str(out / "store"),
                    "--database", f"sqlite:///{tmp_path / 'c.db'}"], check=True)
    db = sqlite3.connect(tmp_path / "c.db")
    # every job the experiment started: teacher, the grid's set + 2 DAD students, the Q(Q(x)) set, 6 students,
    # 8 evals (teacher test and val, 6 students); + the report
    assert db.execute("select count(*) from runs").fetchone()[0] == 1 + 1 + 2 + 1 + 6 + 8 + 1
    # the report run holds the latest report (the re-run rewrote it)
    assert (out / "store" / "runs" / "pacs-report" / "report.md").read_text() == (out / "report.md").read_text()
    assert db.execute("select count(*) from results").fetchone()[0] == 7 * 4 + 3  # test x 4 domains, teacher val


def test_quick_sets_what_was_not_given():
    from experiments.pacs import QUICK, parse_args

    args = parse_args(["--pacs", "x", "--quick", "--epochs", "3"])
    assert args.epochs == 3 and args.teacher_epochs == QUICK["teacher_epochs"] and args.seeds == QUICK["seeds"]
    assert args.grid == (("l2", 0.1), ("l2", 3.0))
    full = parse_args(["--pacs", "x"])
    assert (full.seeds, full.control_seeds, full.teacher_epochs) == (5, 3, 30)


def test_a_bad_grid_or_attack_is_refused_naming_it(capsys):
    with pytest.raises(SystemExit):
        main(["--pacs", "x", "--grid", "l3:0.1"])
    assert "NORM:STEP" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--pacs", "x", "--variants", "dad,nope"])
    assert "nope" in capsys.readouterr().err
