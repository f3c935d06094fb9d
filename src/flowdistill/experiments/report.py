"""docs/results.md from experiment output folders: every number is read from what the runs wrote.

For each experiment sidecar (NAME.json) found in the folders given, the report copies the
experiment's Markdown body, links its plot, and adds a short reading of whether the paper's claim
holds on our runs. Nothing here types a result; the paper's numbers come from `paper.py`.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from flowdistill.data.dataset import atomic_write_text
from flowdistill.data.errors import DataError
from flowdistill.experiments import paper
from flowdistill.experiments.suite import EXPERIMENTS


def _yes(b: bool) -> str:
    return "**yes**" if b else "**no**"


def _reading_ratios(meta: dict[str, Any]) -> list[str]:
    rows = meta["rows"]
    out = []
    ratios = sorted({x["ratio"] for x in rows})
    models = {x["model"] for x in rows}
    if "flowdistill" in models:
        for r in ratios:
            rr = [x for x in rows if x["ratio"] == r and not math.isnan(x["mae"])]
            best = min(rr, key=lambda x: x["mae"])
            won = best["model"] == "flowdistill"
            out.append(f"FlowDistill lowest MAE at {100 * r:g}%: {_yes(won)}"
                       + ("" if best["model"] == "flowdistill" else f" (best: {best['model']})"))
        eff = {e["model"]: e["reached_at"] for e in meta.get("efficiency", [])}
        for m in ("stwa", "bigst"):
            if m in eff:
                at = eff[m]
                holds = at is None or at >= 0.4 - 1e-9
                out.append(f"{m} needs ≥ 40% of the data to match FlowDistill at "
                           f"{100 * ratios[0]:g}% ({paper.CLAIMS['data_efficiency']}): "
                           f"{_yes(holds)} (reached at "
                           f"{'not reached' if at is None else f'{100 * at:g}%'})")
    return out


def _reading_horizons(meta: dict[str, Any]) -> list[str]:
    rows = meta["rows"]
    steps = sorted({x["step"] for x in rows})
    wins = 0
    for s in steps:
        rr = [x for x in rows if x["step"] == s]
        wins += min(rr, key=lambda x: x["mae"])["model"] == "flowdistill"
    return [f"FlowDistill lowest MAE at {wins} of {len(steps)} horizon steps"]


def _reading_volume(meta: dict[str, Any]) -> list[str]:
    rows = meta["rows"]
    buckets = sorted({x["bucket"] for x in rows})
    out = []
    gaps = []
    for b in buckets:
        rr = [x for x in rows if x["bucket"] == b]
        fd = [x for x in rr if x["model"] == "flowdistill"]
        others = [x for x in rr if x["model"] != "flowdistill"]
        if not fd or not others:
            return out
        best_other = min(others, key=lambda x: x["mae"])
        gaps.append(best_other["mae"] - fd[0]["mae"])
    out.append(f"FlowDistill lowest MAE in {sum(g > 0 for g in gaps)} of {len(buckets)} volume "
               "buckets")
    out.append("FlowDistill's MAE advantage over the best other model larger in the busiest "
               f"bucket than in the quietest: {_yes(gaps[-1] > gaps[0])}")
    return out


def _reading_hparams(meta: dict[str, Any]) -> list[str]:
    rows = meta["rows"]
    out = []
    for name in dict.fromkeys(x["param"] for x in rows):
        rr = [x for x in rows if x["param"] == name]
        best = min(rr, key=lambda x: x["val_mae"])
        out.append(f"{name}: best validation MAE at {best['value']:g}; paper's best "
                   f"{paper.BEST_HPARAMS.get(name, float('nan')):g} — agrees: "
                   f"{_yes(bool(best['paper_best']))}")
    return out


def _reading_scalability(meta: dict[str, Any]) -> list[str]:
    rows = meta["rows"]
    out = []
    for kind, label in (("latency", "latency at the largest test size"),
                        ("memory", "forward memory at the largest batch")):
        rr = [x for x in rows if x["kind"] == kind]
        if not rr:
            continue
        top = max(x["x"] for x in rr)
        at = [x for x in rr if x["x"] == top]
        best = min(at, key=lambda x: x["value"])
        out.append(f"FlowDistill lowest {label}: {_yes(best['model'] == 'flowdistill')}"
                   + ("" if best["model"] == "flowdistill" else f" (lowest: {best['model']})"))
    return out


def _reading_ablation(meta: dict[str, Any]) -> list[str]:
    rows = meta["rows"]
    full = next(x for x in rows if x["variant"] == "full")
    out = []
    for x in rows:
        if x["variant"] == "full":
            continue
        out.append(f"{x['variant']} worse than the full model (MAE): {_yes(x['mae'] > full['mae'])}"
                   f"; paper: {_yes(x['paper_mae_change_pct'] > 0)}")
    return out


READINGS = {
    "ratios": _reading_ratios, "horizons": _reading_horizons, "volume": _reading_volume,
    "hparams": _reading_hparams, "scalability": _reading_scalability,
    "ablation": _reading_ablation,
}


def _strip_title(md: str) -> str:
    lines = md.splitlines()
    if lines and lines[0].startswith("# "):
        lines = lines[1:]
    return "\n".join(lines).strip() + "\n"


def _demote(md: str) -> str:
    return "\n".join("#" + ln if ln.startswith("#") else ln for ln in md.splitlines()) + "\n"


def build_report(run_dirs: list[Path], out: Path) -> Path:
    """Write ``out`` (Markdown) from the experiments found in ``run_dirs``."""
    found: list[tuple[str, Path, dict[str, Any]]] = []
    for d in run_dirs:
        if not d.is_dir():
            raise DataError(d, "not a folder")
        for name in EXPERIMENTS:
            side = d / f"{name}.json"
            if side.exists():
                found.append((name, d, json.loads(side.read_text())))
    if not found:
        raise DataError(", ".join(map(str, run_dirs)),
                        f"no experiment outputs found (expected one of {', '.join(EXPERIMENTS)} "
                        ".json written by `flowdistill bench`)")
    found.sort(key=lambda t: EXPERIMENTS.index(t[0]))
    parts = [
        "# Results",
        "",
        "Generated by `flowdistill bench report` from the experiment output folders "
        + ", ".join(f"`{d}`" for d in dict.fromkeys(str(d) for d in run_dirs))
        + ". Every number below was written by the experiments themselves; the paper's numbers "
        "(NYC, 263 zones, 2021) are shown beside ours where the paper has them. Do not edit by "
        "hand: rerun the command.",
        "",
        "## Claims at a glance",
        "",
    ]
    summary: list[str] = []
    sections: list[str] = []
    for name, d, meta in found:
        reading = READINGS[name](meta)
        summary += [f"- {name}: {r}" for r in reading]
        md_path = d / f"{name}.md"
        body = _strip_title(md_path.read_text()) if md_path.exists() else ""
        png = d / f"{name}.png"
        rel = os.path.relpath(png.resolve(), out.resolve().parent)
        body = body.replace(f"]({name}.png)", f"]({rel})")
        quick = " — QUICK preset" if meta.get("quick") else ""
        src = d / f"{name}.csv"
        sections.append(f"## {meta.get('title', name)}{quick}\n\nSource: `{src}`\n\n"
                        + _demote(body)
                        + ("\n**Reading:**\n\n" + "\n".join(f"- {r}" for r in reading) + "\n"
                           if reading else ""))
    text = "\n".join(parts) + "\n" + "\n".join(summary) + "\n\n" + "\n".join(sections)
    atomic_write_text(out, text)
    return out
