"""`python -m services.demo` (the `make demo` command) runs the whole pipeline and catalogs it."""
import sqlite3
import subprocess
import sys

from services.demo.synthetic import CLASSES, DOMAINS, make_dataset


def test_synthetic_dataset_has_every_class_in_every_domain_and_split(tmp_path):
    paths = make_dataset(tmp_path, per_class=4, size=32)
    assert set(paths) == {f"{d}/{s}" for d in DOMAINS for s in ("train", "test")}
    for path in paths.values():
        assert sorted(p.name for p in path.iterdir()) == sorted(CLASSES)
    assert len(list(paths["photo/train"].rglob("*.png"))) == 3 * len(CLASSES)


def test_demo_generates_trains_evaluates_and_catalogs(tmp_path):
    out = tmp_path / "demo"
    subprocess.run([sys.executable, "-m", "services.demo", "--out", str(out), "--per-class", "8", "--epochs", "1",
                    "--objectives", "dad"], check=True, timeout=600)
    table = (out / "results.md").read_text()
    assert "demo-dad" in table and "sketch" in table
    db = sqlite3.connect(out / "catalog.db")
    runs = dict(db.execute("select id, status from runs").fetchall())
    assert runs == {"demo-generate": "SUCCEEDED", "demo-dad": "SUCCEEDED", "eval-demo-dad": "SUCCEEDED"}
    assert db.execute("select count(*) from sample_sets").fetchone()[0] == 1
    assert db.execute("select count(*) from results").fetchone()[0] == 2  # photo and sketch top-1
