"""Markdown tables in the layout of the paper's Tables 1 and 3, combining any number of evaluations (pure).

Rows are models (the result's `name`; several evaluations of one name merge, the latest winning per suite),
columns are the suites in the paper's order -- ImageNet, V2, R, Sketch, A, C↓, Stylized -- then any other
suites (imagefolder:..., named by folder), then Avg. A column appears when at least one row has it, so a
table with every suite has exactly the paper's layout.

Avg is computed as the paper computes it: the mean over the table's columns with ImageNet-C entering as
100 - mCE (an error, lower is better, turned into an accuracy-like score). Check against Table 3, DAD row:
(79.6 + 69.9 + (100 - 53.2) + 22.4 + 65.1 + 46.1 + 31.8) / 7 = 51.7. A row missing a column has no Avg.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

from services.evaluator.suites import SUITES

PAPER_SUITES = tuple(SUITES)  # ImageNet, V2, R, Sketch, A, C↓, Stylized
INCOMPLETE_MARK = "†"


def suite_value(summary: Mapping[str, Any]) -> float | None:
    """The number a suite contributes: mCE for ImageNet-C, top-1 otherwise (both in %)."""
    return summary.get("mce") if summary.get("metric") == "mCE" else summary.get("top1")


def merge_rows(results: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, Mapping[str, Any]]]:
    """{model name: {suite label: summary}}; results are applied in order, so later ones win per suite."""
    rows: dict[str, dict[str, Mapping[str, Any]]] = {}
    for result in results:
        row = rows.setdefault(result["name"], {})
        for label, summary in result["suites"].items():
            if suite_value(summary) is not None or label not in row:
                row[label] = summary
    return rows


def table_columns(rows: Mapping[str, Mapping[str, Any]]) -> list[str]:
    present = {label for row in rows.values() for label in row}
    return [s for s in PAPER_SUITES if s in present] + sorted(present - set(PAPER_SUITES))


def paper_average(values: Mapping[str, float | None]) -> float | None:
    """Mean over the given suites, ImageNet-C as 100 - mCE; None when any value is missing."""
    if not values or any(v is None for v in values.values()):
        return None
    scores = [100 - v if label == "imagenet-c" else v for label, v in values.items()]
    return sum(scores) / len(scores)


def column_title(label: str) -> str:
    suite = SUITES.get(label)
    return suite.column if suite else label


def _best(values: Sequence[float | None], lower_is_better: bool) -> float | None:
    present = [round(v, 1) for v in values if v is not None]
    if len(present) < 2:
        return None
    return min(present) if lower_is_better else max(present)


def _cell(value: float | None, best: float | None, mark: str = "") -> str:
    if value is None:
        return "–"
    text = f"{value:.1f}{mark}"
    return f"**{text}**" if best is not None and round(value, 1) == best else text


def markdown_table(results: Iterable[Mapping[str, Any]], bold_best: bool = True) -> str:
    """The paper-style table of `results` (dad-evaluation dicts), best value per column in bold."""
    rows = merge_rows(results)
    columns = table_columns(rows)
    values = {name: {c: suite_value(row[c]) if c in row else None for c in columns} for name, row in rows.items()}
    averages = {name: paper_average(v) for name, v in values.items()}
    best = {c: _best([v[c] for v in values.values()], c == "imagenet-c") if bold_best else None for c in columns}
    best_avg = _best(list(averages.values()), False) if bold_best else None
    incomplete = False
    lines = ["| Model | " + " | ".join(column_title(c) for c in columns) + " | Avg |",
             "|---|" + "---:|" * (len(columns) + 1)]
    for name, row in rows.items():
        cells = []
        for c in columns:
            mark = INCOMPLETE_MARK if c in row and row[c].get("metric") == "mCE" and not row[c].get("complete") else ""
            incomplete |= bool(mark) and values[name][c] is not None
            cells.append(_cell(values[name][c], best[c], mark))
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {_cell(averages[name], best_avg)} |")
    notes = ["", "Top-1 accuracy (%) except C↓, the mean Corruption Error (%, lower is better, normalised by "
                 "AlexNet). Avg: mean over the columns with C↓ as 100 − mCE, as in the paper."]
    if incomplete:
        notes.append(f"{INCOMPLETE_MARK} mCE over a subset of the 15 corruptions × 5 severities, or of non-ImageNet "
                     "classes: not comparable to published numbers.")
    return "\n".join(lines + notes) + "\n"
