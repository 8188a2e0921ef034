"""Paper-style tables: the columns of Tables 1/3, Avg as the paper computes it, several evaluations merged."""
import pytest

from services.evaluator.tables import PAPER_SUITES, markdown_table, merge_rows, paper_average

# Table 3 of the paper, DAD and KD rows (ViT-B/16 students): ImageNet, V2, R, Sketch, A, C (mCE), Stylized, Avg.
TABLE3 = {"DAD": ([79.6, 69.9, 65.1, 46.1, 31.8, 53.2, 22.4], 51.7),
          "KD": ([78.6, 67.2, 51.5, 34.7, 16.0, 61.5, 16.2], 43.2)}


def _result(name, values, created="2026-01-01T00:00:00+00:00", complete=True):
    suites = {}
    for suite, v in values.items():
        if suite == "imagenet-c":
            suites[suite] = {"metric": "mCE", "mce": v, "top1": 40.0, "complete": complete}
        else:
            suites[suite] = {"metric": "top1", "top1": v}
    return {"name": name, "created_at": created, "suites": suites}


def test_avg_reproduces_the_papers_table_3():
    for name, (values, avg) in TABLE3.items():
        assert paper_average(dict(zip(PAPER_SUITES, values))) == pytest.approx(avg, abs=0.05), name


def test_table_has_the_papers_columns_in_order_and_bolds_the_best():
    results = [_result(n, dict(zip(PAPER_SUITES, v))) for n, (v, _) in TABLE3.items()]
    lines = markdown_table(results).splitlines()
    assert lines[0] == "| Model | ImageNet | V2 | R | Sketch | A | C↓ | Stylized | Avg |"
    assert lines[2] == "| DAD | **79.6** | **69.9** | **65.1** | **46.1** | **31.8** | **53.2** | **22.4** | **51.7** |"
    assert lines[3] == "| KD | 78.6 | 67.2 | 51.5 | 34.7 | 16.0 | 61.5 | 16.2 | 43.2 |"  # lower mCE wins C↓
    assert "†" not in "\n".join(lines)


def test_evaluations_of_one_model_merge_and_the_latest_wins():
    old = _result("S", {"imagenet-val": 70.0, "imagenet-a": 5.0}, "2026-01-01T00:00:00+00:00")
    new = _result("S", {"imagenet-a": 7.0, "cartoon": 50.0}, "2026-01-02T00:00:00+00:00")
    rows = merge_rows([old, new])
    assert {k: v["top1"] for k, v in rows["S"].items()} == {"imagenet-val": 70.0, "imagenet-a": 7.0, "cartoon": 50.0}
    lines = markdown_table([old, new]).splitlines()
    assert lines[0] == "| Model | ImageNet | A | cartoon | Avg |"
    assert lines[2] == "| S | 70.0 | 7.0 | 50.0 | 42.3 |"


def test_missing_cells_and_partial_imagenet_c_are_marked():
    a = _result("A", {"imagenet-val": 70.0, "imagenet-c": 60.0}, complete=False)
    b = _result("B", {"imagenet-val": 60.0})
    text = markdown_table([a, b])
    assert "| A | **70.0** | 60.0† | 55.0 |" in text and "| B | 60.0 | – | – |" in text
    assert "† mCE over a subset" in text
