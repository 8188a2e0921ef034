"""Log-log plot of benchmarks/scale.py's numbers (how each cost grows with the set's images), and the same
numbers as a Markdown table on stdout (README → Benchmarks → Scale).

    python benchmarks/scale_plot.py benchmarks/results/scale.json docs/scale.png
"""
from __future__ import annotations

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

DEEP = ("middle", "end")


def series(report: dict) -> dict[str, tuple[list[int], list[float]]]:
    """{label: (images, seconds)} for each cost measured at more than one size."""
    out: dict[str, tuple[list[int], list[float]]] = {}

    def add(label: str, n: int, seconds: float | None) -> None:
        if seconds is not None:
            xs, ys = out.setdefault(label, ([], []))
            xs.append(n)
            ys.append(max(seconds, 1e-4))

    for r in report.get("listing", []):
        add("generator listing + planning", r["images"], r["listing_planning_s"])
    for r in report["runs"]:
        n = r["images"]
        add("fabricate (writer)", n, r["fabricate_s"])
        add("sha256 verify, first start", n, r.get("preflight_verify_first_s"))
        for backend in ("sqlite", "postgresql"):
            c = r.get(backend)
            if not c:
                continue
            add(f"ingest until complete ({backend})", n, c["ingest_s"])
            add(f"until browsable: first page served ({backend})", n, c.get("browsable_s"))
            api = c["api"]
            # p50: with 10 requests per case on a shared machine, p99 is the noisiest one (it is in the table)
            deep_offset = [v["p50_ms"] for k, v in api.items() if k.endswith(DEEP)]
            deep_after = [v["p50_ms"] for k, v in api.items() if k.endswith("(after)")]
            add(f"API slowest deep page by offset, p50 ({backend})", n, max(deep_offset) / 1000 if deep_offset else None)
            add(f"API slowest deep page by cursor, p50 ({backend})", n, max(deep_after) / 1000 if deep_after else None)
            add(f"API set page, p50 ({backend})", n, api["set page"]["p50_ms"] / 1000)
    return out


def table(report: dict, full: bool = False) -> str:
    """Markdown: one row per cost, one column per size measured (`full`: every API case, not a summary)."""
    runs = report["runs"]
    sizes = [r["images"] for r in runs]
    lines = ["| cost | " + " | ".join(f"{n:,} images" for n in sizes) + " |", "|---" * (len(sizes) + 1) + "|"]

    def row(label: str, values) -> None:
        lines.append(f"| {label} | " + " | ".join("–" if v is None else str(v) for v in values) + " |")

    row("shards / manifest KB / load ms", [f"{r['shards']} / {r['manifest_bytes'] / 1e3:.0f} / {r['manifest_load_ms']}"
                                          for r in runs])
    row("resume: read every commit marker (s)", [r.get("resume_markers_s") for r in runs])
    row("sha256 verify MB/s (one core)", [r["sha256_MBps"] for r in runs])
    row("preflight verify first / second start (s)",
        [f"{r.get('preflight_verify_first_s')} / {r.get('preflight_verify_second_s')}" for r in runs])
    row("trainer dataset open (s) / RSS MB / first 256 rows (s)",
        [f"{r['trainer_open_s']} / {r['trainer_open_rss_MB']} / {r['trainer_first_256_rows_s']}"
         if "trainer_open_s" in r else None for r in runs])
    for backend in ("sqlite", "postgresql"):
        cats = [r.get(backend) for r in runs]  # a size may have run on one backend only
        if not any(cats):
            continue
        row(f"{backend}: browsable (first page served) / ingest complete (s) / DB MB",
            [f"{c.get('browsable_s', '–')} / {c['ingest_s']} / {c['db_bytes'] / 1e6:.0f}" if c else None for c in cats])
        for label, pick in (("slowest deep page by offset", lambda k: k.endswith(DEEP)),
                            ("slowest deep page by cursor (`after`)", lambda k: k.endswith("(after)"))):
            cells = []
            for c in cats:
                hits = [(v["p50_ms"], v["p99_ms"], k) for k, v in c["api"].items() if pick(k)] if c else []
                worst = max(hits) if hits else None
                cells.append(f"{worst[0]} / {max(h[1] for h in hits)} ({worst[2].split(',')[0]})" if worst else None)
            row(f"{backend}: {label} p50 / p99 ms", cells)
        first = next(c for c in cats if c)
        names = [k for k in first["api"] if full or not (k.endswith(DEEP) or k.endswith("(after)") or k.endswith("start"))]
        for name in names:
            row(f"{backend}: {name} p50 / p99 ms",
                [f"{c['api'][name]['p50_ms']} / {c['api'][name]['p99_ms']}" if c and name in c["api"] else None
                 for c in cats])
        row(f"{backend}: UI set page / Next (s), page errors",
            [f"{c['ui'].get('set_page_s')} / {c['ui'].get('next_page_s')}, {c['ui'].get('page_errors')}"
             if c and c.get("ui") else None for c in cats])
    listing = report.get("listing", [])
    if listing:
        lines += ["", "| generator listing + planning | " + " | ".join(f"{r['images']:,}" for r in listing) + " |",
                  "|---" * (len(listing) + 1) + "|",
                  "| seconds / RSS MB / shards | " + " | ".join(
                      f"{r['listing_planning_s']} / {r['listing_rss_MB']} / {r['generator_shards']}" for r in listing) + " |"]
    return "\n".join(lines)


def main(src: str, dst: str) -> None:
    report = json.loads(open(src).read())
    print(table(report, full="--full" in sys.argv))
    fig, ax = plt.subplots(figsize=(12, 6))
    styles = ["-", "--", "-.", ":"]
    for i, (label, (xs, ys)) in enumerate(sorted(series(report).items())):
        ax.plot(xs, ys, marker="o", linestyle=styles[i // 10 % 4], label=label)
    ax.axvline(1_281_167, color="grey", linestyle=":", label="ImageNet-1k train")
    ax.axhline(0.2, color="red", linestyle="--", linewidth=0.8, label="API target 200 ms")
    ax.axhline(120, color="orange", linestyle="--", linewidth=0.8, label="browsable / listing target 2 min")
    ax.set(xscale="log", yscale="log", xlabel="images in the set (2 rows each)", ylabel="seconds",
           title=f"DAD at scale: tiny images, {report.get('machine', '')}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    fig.tight_layout()
    fig.savefig(dst, dpi=110)


if __name__ == "__main__":
    main(*sys.argv[1:3])
