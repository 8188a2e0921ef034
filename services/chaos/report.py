"""The rehearsal's report: `report.json` (everything) and `report.md` (faults per kind, recovery, verdicts)."""
from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import asdict
from pathlib import Path


def verdict(report) -> dict:
    """The headline: every fired fault recovered, 0 lost, 0 duplicated, identical set and model."""
    gen = report.phases.get("generate", {}).get("compare", {})
    train = report.phases.get("train", {}).get("compare", {})
    fired = [f for f in report.faults if f["fired_at_s"] is not None]
    control = report.phases.get("control_plane")
    return {"faults_fired": len(fired), "faults_recovered": sum(f["recovered"] for f in fired),
            "faults_not_fired": len(report.faults) - len(fired),
            "lost": gen.get("lost"), "duplicated": gen.get("duplicated"),
            "set_identical": gen.get("identical"), "model_bit_exact": train.get("bit_exact"),
            "unplanned_failures": len(report.findings),
            "control_plane_ok": None if control is None else control.get("passed", False),
            "passed": bool(fired) and all(f["recovered"] for f in fired) and gen.get("identical") is True
                      and gen.get("lost") == 0 and gen.get("duplicated") == 0
                      and (train.get("bit_exact") is True or not report.config.get("train", True))
                      and (control is None or control.get("passed") is True)}


def per_kind(faults: list[dict]) -> dict[str, dict]:
    out: dict[str, dict] = defaultdict(lambda: {"injected": 0, "recovered": 0, "not_fired": 0, "time_lost_s": []})
    for f in faults:
        k = out[f["kind"]]
        if f["fired_at_s"] is None:
            k["not_fired"] += 1
            continue
        k["injected"] += 1
        k["recovered"] += int(f["recovered"])
        if f["time_lost_s"] is not None:
            k["time_lost_s"].append(f["time_lost_s"])
    return dict(out)


def write_report(report, out: Path) -> tuple[Path, Path]:
    data = {**asdict(report), "verdict": verdict(report), "per_kind": per_kind(report.faults)}
    (out / "report.json").write_text(json.dumps(data, indent=2, default=str))
    v = data["verdict"]
    lines = ["# Chaos rehearsal", "",
             f"images {report.config['images']}, seed {report.config['seed']}, wall {report.wall_s:.0f} s; "
             f"**{'PASSED' if v['passed'] else 'FAILED'}**: {v['faults_recovered']}/{v['faults_fired']} faults "
             f"recovered, {v['lost']} lost, {v['duplicated']} duplicated, set identical: {v['set_identical']}, "
             f"model bit-exact: {v['model_bit_exact']}, control plane after kills: {v['control_plane_ok']}, "
             f"unplanned failures: {v['unplanned_failures']}", "",
             "| kind | injected | recovered | not fired | time lost per fault (s) |", "|---|---|---|---|---|"]
    for kind, k in sorted(data["per_kind"].items()):
        lost = ", ".join(f"{t:.1f}" for t in k["time_lost_s"]) or "-"
        lines.append(f"| {kind} | {k['injected']} | {k['recovered']} | {k['not_fired']} | {lost} |")
    lines += ["", "| phase | kind | at (s) | recovered | recovery (s) | lost (s) | what |", "|---|---|---|---|---|---|---|"]
    for f in report.faults:
        at = "-" if f["fired_at_s"] is None else f"{f['fired_at_s']:.1f}"
        rec = "-" if f["recover_s"] is None else f"{f['recover_s']:.1f}"
        lost = "-" if f["time_lost_s"] is None else f"{f['time_lost_s']:.1f}"
        lines.append(f"| {f['phase']} | {f['kind']} | {at} | {f['recovered']} | {rec} | {lost} | {f['detail']} |")
    lines += ["", "## Phases", ""]
    for name, phase in report.phases.items():
        shown = {k: v for k, v in phase.items() if k != "attempts"}
        attempts = phase.get("attempts")
        lines.append(f"- **{name}**: {json.dumps(shown, default=str)}"
                     + (f"; attempts (exit, killed, s): {[(a['rc'], a['killed'], a['wall_s']) for a in attempts]}"
                        if attempts else ""))
    lines += ["", f"Proxy: {json.dumps(report.proxy)}", ""]
    if report.findings:
        lines += ["## Unplanned failures (a job died without a kill)", ""]
        for f in report.findings:
            lines += [f"- {f['phase']}, attempt {f['attempt']}, exit {f['rc']}:", "", "```", f["log_tail"], "```", ""]
    md = out / "report.md"
    md.write_text("\n".join(lines) + "\n")
    return out / "report.json", md
