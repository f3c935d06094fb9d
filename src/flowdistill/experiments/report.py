"""docs/results.md from experiment output folders: every number is read from what the runs wrote.

For each experiment sidecar (NAME.json) found in the folders given (or in their per-dataset
subfolders, ``docs/results/<dataset>/``), the report states how the table was made (dataset, seeds,
epochs, teacher and its own score, git revision, machine), copies the experiment's Markdown body,
links its plot, and adds a short reading of whether the paper's claim holds on our runs.

Honesty rules: "Claims at a glance" is built from full-protocol results only (``"quick": false``);
smoke readings (the QUICK preset or any shortened training) go to their own marked section. The
headline section written by `flowdistill bench headline` (between its markers) is kept verbatim, or
re-rendered from ``headline.json``, and placed first. Nothing here types a result; the paper's
numbers come from `paper.py`.
"""

from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from flowdistill.data.dataset import atomic_write_text
from flowdistill.data.errors import DataError
from flowdistill.experiments import paper
from flowdistill.experiments.common import (
    CONTROL,
    DEFAULT_MODELS,
    VAL_PICK,
    on_cpu,
    pick_by_validation,
    protocol_line,
    teacher_line,
)
from flowdistill.experiments.headline import END as HEADLINE_END
from flowdistill.experiments.headline import START as HEADLINE_START
from flowdistill.experiments.headline import render as render_headline
from flowdistill.experiments.suite import EXPERIMENTS


def _yes(b: bool) -> str:
    return "**yes**" if b else "**no**"


def _seeded(*rows: dict[str, Any]) -> bool:
    """Every row has two seeds or more, so their spread can be judged at all."""
    return all(x.get("seeds", 1) >= 2 for x in rows)


def _beyond(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Two rows' mean MAEs differ by more than their seeds' stds added (needs ≥ 2 seeds each)."""
    return _seeded(a, b) and abs(a["mae"] - b["mae"]) > a.get("mae_std", 0.0) + b.get("mae_std", 0.0)


def _spread(a: dict[str, Any], b: dict[str, Any]) -> str:
    """Whether two rows' mean MAEs differ by more than their seeds' stds added (no overlap).

    A gap inside that spread is not a finding; with one seed there is no spread to judge.
    """
    if not _seeded(a, b):
        return ""
    return f"; {'beyond' if _beyond(a, b) else 'within'} the seeds' spread"


def season_note(ha: dict[float, float]) -> str:
    """Why a sweep's error can rise with the training ratio (a sentence, or "" when it does not).

    The test period is fixed (the last slots) while the training slots grow from the start of the
    period, so the added slots may come from a season unlike the test period's. The historical
    average shows it without seed noise: its test MAE at the largest ratio above the one at the
    smallest means more training data moved its forecast away from the test period's level.
    """
    if len(ha) < 2:
        return ""
    lo, hi = min(ha), max(ha)
    if not ha[hi] > ha[lo]:
        return ""
    return (f"The test period is fixed while the training slots grow from the start of the "
            f"period, and here the added slots come from another season: the historical "
            f"average's test MAE rises from {ha[lo]:.3f} at {100 * lo:g} % to {ha[hi]:.3f} at "
            f"{100 * hi:g} %. A larger ratio need not lower any model's error on this dataset; "
            "compare the models within a column, not a model across columns.")


def _reading_ratios(meta: dict[str, Any]) -> list[str]:
    rows = meta["rows"]
    out = []
    ratios = sorted({x["ratio"] for x in rows})
    models = {x["model"] for x in rows}
    if "flowdistill" in models:
        for r in ratios:
            rr = [x for x in rows if x["ratio"] == r and not math.isnan(x["mae"])]
            ranked = sorted(rr, key=lambda x: x["mae"])
            fd = next((x for x in rr if x["model"] == "flowdistill"), None)
            if fd is None or len(ranked) < 2:
                continue
            won = ranked[0] is fd
            other = ranked[1] if won else ranked[0]  # the runner-up, or the model that beat it
            out.append(f"FlowDistill lowest MAE at {100 * r:g}%: {_yes(won)} "
                       f"({fd['mae']:.3f} vs {other['model']} {other['mae']:.3f}"
                       f"{_spread(fd, other)})")
        eff = {e["model"]: e["reached_at"] for e in meta.get("efficiency", [])}
        for m in ("stwa", "bigst"):
            if m in eff:
                at = eff[m]
                holds = at is None or at >= 0.4 - 1e-9
                out.append(f"{m} needs ≥ 40% of the data to match FlowDistill at "
                           f"{100 * ratios[0]:g}% ({paper.CLAIMS['data_efficiency']}): "
                           f"{_yes(holds)} (reached at "
                           f"{'not reached' if at is None else f'{100 * at:g}%'})")
    note = season_note({x["ratio"]: x["mae"] for x in rows
                        if x["model"] == "ha" and not math.isnan(x["mae"])})
    if note:
        out.append(note)
    return out


def _wins(groups: list[list[dict[str, Any]]]) -> tuple[int, int, bool]:
    """In how many groups FlowDistill has the lowest mean MAE, in how many of those beyond the
    seeds' spread from the runner-up, and whether the spread can be judged at all (≥ 2 seeds)."""
    wins = beyond = 0
    seeded = bool(groups) and _seeded(*(x for g in groups for x in g))
    for g in groups:
        ranked = sorted((x for x in g if not math.isnan(x["mae"])), key=lambda x: x["mae"])
        if len(ranked) >= 2 and ranked[0]["model"] == "flowdistill":
            wins += 1
            beyond += _beyond(ranked[0], ranked[1])
    return wins, beyond, seeded


def _reading_horizons(meta: dict[str, Any]) -> list[str]:
    rows = meta["rows"]
    steps = sorted({x["step"] for x in rows})
    wins, beyond, seeded = _wins([[x for x in rows if x["step"] == s] for s in steps])
    spread = f" (beyond the seeds' spread at {beyond})" if seeded else ""
    return [f"FlowDistill lowest MAE at {wins} of {len(steps)} horizon steps{spread}"]


def _reading_volume(meta: dict[str, Any]) -> list[str]:
    rows = meta["rows"]
    buckets = sorted({x["bucket"] for x in rows})
    groups = [[x for x in rows if x["bucket"] == b] for b in buckets]
    gaps = []
    for rr in groups:
        fd = [x for x in rr if x["model"] == "flowdistill"]
        others = [x for x in rr if x["model"] != "flowdistill"]
        if not fd or not others:
            return []
        best_other = min(others, key=lambda x: x["mae"])
        gaps.append(best_other["mae"] - fd[0]["mae"])
    wins, beyond, seeded = _wins(groups)
    spread = f" (beyond the seeds' spread in {beyond})" if seeded else ""
    return [f"FlowDistill lowest MAE in {wins} of {len(buckets)} volume buckets{spread}",
            "FlowDistill's MAE advantage over the best other model larger in the busiest "
            f"bucket than in the quietest: {_yes(gaps[-1] > gaps[0])}"]


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
        paper_says = x.get("paper_mae_change_pct")
        diff = x["mae"] - full["mae"]
        out.append(f"{x['variant']} worse than the full model (MAE): {_yes(diff > 0)} "
                   f"({x['mae']:.3f} vs {full['mae']:.3f}, {100 * diff / full['mae']:+.1f} %"
                   f"{_spread(x, full)})"
                   + (f"; paper: {_yes(paper_says > 0)}" if paper_says is not None else ""))
    return out


READINGS = {
    "ratios": _reading_ratios, "horizons": _reading_horizons, "volume": _reading_volume,
    "hparams": _reading_hparams, "scalability": _reading_scalability,
    "ablation": _reading_ablation,
}


def _reading_cost(meta: dict[str, Any]) -> list[str]:
    rows = {x["model"]: x for x in meta["rows"]}
    fd = rows.get("flowdistill")
    if fd is None:
        return []
    out = []
    others = [x for x in rows.values() if x["params"] and x["model"] not in ("flowdistill",
                                                                              "llm-teacher")]
    lighter = sorted(x["model"] for x in others if x["params"] < fd["params"])
    out.append(f"FlowDistill student: {fd['params']:,} parameters; {len(lighter)} of "
               f"{len(others)} trained baselines have fewer"
               + (f" ({', '.join(lighter)})" if lighter else ""))
    lat = [x for x in rows.values() if x.get("latency_b1_ms") is not None]
    rank = 1 + sum(x["latency_b1_ms"] < fd["latency_b1_ms"] for x in lat)
    out.append(f"FlowDistill batch-1 latency rank: {rank} of {len(lat)} (1 = fastest)")
    t = rows.get("llm-teacher")
    if t is not None:
        if t.get("latency_b1_ms") and fd.get("latency_b1_ms"):
            out.append(f"the LLM teacher is {t['latency_b1_ms'] / fd['latency_b1_ms']:.0f}× "
                       "slower per window than the student at batch 1")
        out.append(f"the LLM teacher has {t['params_total']:,} parameters in all "
                   f"({t['params']:,} trained), {t['params_total'] / max(fd['params'], 1):.0f}× "
                   "the student's")
    else:
        out.append("LLM teacher not measured in this run (see the note under the table)")
    return out


READINGS["cost"] = _reading_cost
SKIP_DIRS = {"partial", "runs", "teachers", "cells"}
PLANNED_RATIOS = (0.1, 0.2, 0.3, 0.4, 0.7)  # the full sweep (scripts/full_sweep.sh)


def _full_cell(cell: dict[str, Any]) -> bool:
    """A kept run trained at the paper's protocol (FULL's epochs and patience, every window)."""
    from flowdistill.experiments.common import is_full_protocol

    t = cell.get("config", {}).get("run", {}).get("train", {})
    return is_full_protocol(t.get("max_epochs", 0), t.get("patience", 0),
                            t.get("limit_train_batches", 0), t.get("limit_val_batches", 0))


def kept_cells(folder: Path) -> dict[tuple[str, float], list[dict[str, Any]]]:
    """The full-protocol runs kept under ``folder/cells/<name>/r<ratio>/s<seed>.json``."""
    cells: dict[tuple[str, float], list[dict[str, Any]]] = {}
    for f in sorted((folder / "cells").glob("*/r*/s*.json")):
        cell = json.loads(f.read_text())
        if not _full_cell(cell):
            continue
        ratio = float(cell["config"]["run"]["train_ratio"])
        cells.setdefault((f.parts[-3], ratio), []).append(cell)
    return cells


def time_left(cells: dict[tuple[str, float], list[dict[str, Any]]],
              seeds: tuple[int, ...] = (0, 1, 2)) -> tuple[int, float, list[str]]:
    """The planned cells not kept yet, their estimated seconds, and the models with none to time.

    Plans a sweep that runs for days on a CPU. A missing cell of a model at ratio r is estimated
    from that model's kept cells: the mean of their training seconds, each scaled by r over its
    own ratio (the training part of an epoch grows with the windows; validation does not, so the
    estimate leans high for large ratios). It says nothing of early stopping's luck. Cells
    trained on a GPU are counted as done but not timed: their seconds say nothing of a CPU's.
    """
    missing, seconds, untimed = 0, 0.0, set()
    for m in DEFAULT_MODELS:
        timed = [(r, float(c["fit"]["seconds"])) for (n, r), v in cells.items() if n == m
                 for c in v if c.get("fit", {}).get("seconds") and on_cpu(c)]
        for r in PLANNED_RATIOS:
            have = {c["config"]["run"]["seed"] for c in cells.get((m, r), [])}
            for _ in (s for s in seeds if s not in have):
                missing += 1
                if timed:
                    seconds += sum(sec * r / rk for rk, sec in timed) / len(timed)
                else:
                    untimed.add(m)
    return missing, seconds, sorted(untimed)


def efficiency_so_far(cells: dict[tuple[str, float], list[dict[str, Any]]],
                      seeds: tuple[int, ...] = (0, 1, 2)) -> list[str]:
    """Which baselines already reach FlowDistill's 10 % error, from complete columns only.

    The data-efficiency table needs the whole sweep; while it runs, a model's answer is already
    known once every ratio up to the first one that reaches the bar is complete (all seeds).
    Walking up the planned ratios: a complete ratio at or below the bar answers "reached", an
    incomplete one stops the walk ("not known yet"), and all complete without reaching it
    answers "not reached". Nothing is said until FlowDistill's own smallest ratio is complete.
    """
    from flowdistill.experiments.common import mean_std

    def complete(model: str, r: float) -> list[float] | None:
        runs = cells.get((model, r), [])
        have = {c["config"]["run"]["seed"] for c in runs}
        return [c["test"]["mae"] for c in runs] if set(seeds) <= have else None

    ref_ratio = PLANNED_RATIOS[0]
    ref = complete("flowdistill", ref_ratio)
    if ref is None:
        return []
    bar = mean_std(ref)[0]
    out = []
    for m in DEFAULT_MODELS:
        if m == "flowdistill":
            continue
        answer = "not reached at any planned ratio"
        for r in PLANNED_RATIOS:
            maes = complete(m, r)
            if maes is None:
                answer = f"not known yet ({100 * r:g} % incomplete)"
                break
            mae = mean_std(maes)[0]
            if mae <= bar:
                answer = f"reaches it at {100 * r:g} % ({mae:.3f})"
                break
        out.append(f"{m}: {answer}")
    return [f"FlowDistill at {100 * ref_ratio:g} %: {bar:.3f} (mean of seeds "
            f"{', '.join(map(str, seeds))})"] + out


def picked_by_validation(cells: dict[tuple[str, float], list[dict[str, Any]]],
                         distilled: str = "flowdistill",
                         alone: str = CONTROL) -> dict[float, list[dict[str, Any]]]:
    """Per ratio and seed, the distilled student or its no-teacher control, whichever has the
    lower validation MAE: what a user who checks the teacher on validation would deploy.

    A teacher helps only where it knows more than the student; with more training data the
    student alone can beat it (measured: taxi at 40 %), and only validation may say so, never the
    test. Seeds with one of the two runs missing are left out."""
    out: dict[float, list[dict[str, Any]]] = {}
    for (name, r), runs in sorted(cells.items()):
        if name != distilled:
            continue
        controls = {c["config"]["run"]["seed"]: c for c in cells.get((alone, r), [])}
        for c in runs:
            other = controls.get(c["config"]["run"]["seed"])
            if other is not None:
                out.setdefault(r, []).append(pick_by_validation(c, other))
    return out


def _efficiency_block(cells: dict[tuple[str, float], list[dict[str, Any]]]) -> str:
    lines = efficiency_so_far(cells)
    if not lines:
        return ""
    return ("\nData efficiency so far (the smallest ratio at which each model's mean MAE reaches "
            "FlowDistill's at 10 %; a ratio counts once all three seeds are kept):\n\n"
            + "".join(f"- {x}\n" for x in lines))


def _teacher_lines(cells: dict[tuple[str, float], list[dict[str, Any]]],
                   names: list[str]) -> str:
    """One bullet per teacher, naming every row it taught (many variants share one teacher; a row
    kept from an earlier teacher says whose), and why one teacher may appear twice."""
    by_row: dict[str, set[str]] = {}
    for (n, _), v in cells.items():
        for c in v:
            if c.get("model") == "flowdistill" and c.get("teacher"):
                t = c["teacher"]
                by_row.setdefault(n, set()).add(
                    f"{t.get('model')} (trained on {t.get('trained_on', 'unknown data')}; "
                    f"fingerprint {t.get('fingerprint', '?')}, its test MAE "
                    f"{t.get('test', {}).get('mae', float('nan')):.3f})")
    rows_of: dict[str, list[str]] = {}
    for n in names:
        for t in sorted(by_row.get(n, ())):
            rows_of.setdefault(t, []).append(n)
    out = "".join(f"- teacher of {', '.join(ns)}: {t}\n" for t, ns in rows_of.items())
    if len({re.sub(r"fingerprint \w+, ", "", t) for t in rows_of}) < len(rows_of):
        out += ("- a teacher listed under two fingerprints was forecast again from its kept "
                "weights on another CPU (the last bits differ); its cells are matched by the "
                "forecasts' probe (docs/experiments.md)\n")
    return out


PLOT_SO_FAR = "ratios-so-far.png"


def plot_sweep_so_far(shown: dict[tuple[str, float], list[dict[str, Any]]], title: str,
                      path: Path) -> None:
    """Test MAE against the training ratio for every learned model with a kept cell: the sweep's
    curves while it runs. Filled markers: all three seeds kept; hollow: fewer (not a result yet).
    HA and last value are left off: their errors would flatten every other curve."""
    from flowdistill.experiments.common import mean_std, pyplot, save_figure

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    cmap = plt.get_cmap("tab10")
    models = [m for m in DEFAULT_MODELS if m not in ("ha", "last-value")] + [VAL_PICK]
    for i, m in enumerate(models):
        pts = sorted((r, v) for (n, r), v in shown.items() if n == m and v)
        if not pts:
            continue
        color = "tab:blue" if m.startswith("flowdistill") else cmap((i % 9) + 1)
        xs = [100 * r for r, _ in pts]
        stats = [mean_std([c["test"]["mae"] for c in v]) for _, v in pts]
        ax.plot(xs, [mu for mu, _ in stats], color=color, label=m,
                lw=2.5 if m == "flowdistill" else 1.2, ls="--" if m == VAL_PICK else "-")
        for x, (mu, sd), (_, v) in zip(xs, stats, pts, strict=True):
            done = len({c["config"]["run"]["seed"] for c in v}) >= 3
            ax.errorbar([x], [mu], yerr=[sd], fmt="o", color=color, capsize=2,
                        mfc=color if done else "white")
    ax.set_xlabel("training ratio (%)")
    ax.set_ylabel("test MAE")
    ax.set_xticks([100 * r for r in PLANNED_RATIOS])
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    ax.set_title(title, fontsize=10)
    save_figure(fig, path)


def _link(path: Path, out: Path) -> str:
    """``path`` as the report at ``out`` links it."""
    return os.path.relpath(path.resolve(), out.resolve().parent)


def _plot_block(folder: Path, shown: dict[tuple[str, float], list[dict[str, Any]]],
                out: Path | None) -> str:
    if out is None:
        return ""
    png = folder / PLOT_SO_FAR
    plot_sweep_so_far(shown, f"{folder.name}: test MAE vs training ratio so far "
                      "(hollow: fewer than 3 seeds kept)", png)
    return (f"\n![{folder.name}: test MAE vs training ratio so far]({_link(png, out)})\n\n"
            "Mean ± std over the kept seeds; hollow markers have fewer than three seeds. HA and "
            "last value are off the plot (table above).\n")


def progress_section(run_dirs: list[Path], out: Path | None = None) -> str:
    """The full sweep so far: every kept full-protocol cell, per model and ratio (no claims).

    With ``out`` (the report's path), each dataset's curves so far are drawn into its results
    folder and linked from the section."""
    from flowdistill.experiments.common import fmt_pm, markdown_table, mean_std

    parts: list[str] = []
    for d in run_dirs:
        for folder in sorted(x for x in d.iterdir() if x.is_dir() and (x / "cells").is_dir()):
            cells = kept_cells(folder)
            if not cells:
                continue
            picked = picked_by_validation(cells)
            shown = {**cells, **{(VAL_PICK, r): v for r, v in picked.items()}}
            names = sorted({n for n, _ in shown},
                           key=lambda n: (DEFAULT_MODELS.index(n) if n in DEFAULT_MODELS
                                          else len(DEFAULT_MODELS), n))
            ratios = sorted({r for _, r in cells} | set(PLANNED_RATIOS))

            def reading(runs: list[dict[str, Any]]) -> str:
                mae, sd = mean_std([c["test"]["mae"] for c in runs])
                seeds = ",".join(str(c["config"]["run"]["seed"]) + ("" if on_cpu(c) else "*")
                                 for c in runs)
                return f"{fmt_pm(mae, sd, len(runs), 3)} (s{seeds})"

            # A variant kept at one ratio only (an ablation, a hyper-parameter point, another
            # teacher) is no row of the ratio sweep: it goes in a short table of its own.
            single = {n for n in names if n not in DEFAULT_MODELS and n not in (VAL_PICK, CONTROL)
                      and len({r for m, r in shown if m == n}) == 1}
            rows = [[n] + [reading(shown[(n, r)]) if shown.get((n, r)) else "–" for r in ratios]
                    for n in names if n not in single]
            one_ratio = [[n, f"{100 * r:g} %", reading(shown[(n, r)])]
                         for n in names if n in single for m, r in shown if m == n]
            planned = len(DEFAULT_MODELS) * len(PLANNED_RATIOS) * 3
            done = sum(len(v) for (n, r), v in cells.items()
                       if n in DEFAULT_MODELS and r in PLANNED_RATIOS)
            teacher_lines = _teacher_lines(cells, names)
            ha = {r: mean_std([c["test"]["mae"] for c in v])[0]
                  for (n, r), v in cells.items() if n == "ha"}
            note = season_note(ha)
            missing, secs, untimed = time_left(cells)
            gpu = sum(not on_cpu(c) for v in cells.values() for c in v)
            pick_note = ("- " + VAL_PICK + ": per seed, the student or its no-teacher control, "
                         "whichever has the lower validation MAE (the control chosen: "
                         + ", ".join(f"{100 * r:g} % {sum(not c.get('teacher') for c in v)}"
                                     f" of {len(v)}" for r, v in sorted(picked.items()))
                         + ")\n") if picked else ""
            gpu_note = (f"- seeds marked * ({gpu} cells) trained on the GPU named under machines: "
                        "same code, protocol and early stopping; only the hardware differs\n"
                        if gpu else "")
            left = (f"- still to run: {missing} cells, about {secs / 3600:.0f} CPU-hours "
                    "(one thread each) by the kept cells' training times scaled with the ratio"
                    + (f"; not counted, no kept cell to time: {', '.join(untimed)}"
                       if untimed else "") + "\n") if missing else ""
            revs = sorted({str(c.get("git")) for v in cells.values() for c in v})
            machines = sorted({str(c.get("machine")) for v in cells.values() for c in v})
            parts.append(
                f"### Ratio sweep so far — {folder.name}\n\n"
                f"Source: `{folder / 'cells'}` ({done} of the {planned} cells of the ratio sweep: "
                f"{len(DEFAULT_MODELS)} models × ratios "
                f"{', '.join(f'{100 * r:g}' for r in PLANNED_RATIOS)} % × seeds 0, 1, 2). Test "
                "MAE, mean ± std over the seeds listed in brackets; every cell ran to early "
                "stopping at the full protocol (up to 100 epochs, patience 15).\n\n"
                + teacher_lines
                + f"- git revisions of the cells: {', '.join(revs)}; machines: "
                f"{'; '.join(machines)}\n"
                f"- students, baselines: the first r % of {folder.name}'s slots (r = the column)"
                "\n" + pick_note + gpu_note + left + "\n"
                + markdown_table(["model"] + [f"{100 * r:g} %" for r in ratios], rows)
                + (f"\n{note}\n" if note else "")
                + _plot_block(folder, shown, out)
                + ("\nFlowDistill variants kept at one ratio (ablation, hyper-parameter points, "
                   "other teachers; their experiments report them once complete):\n\n"
                   + markdown_table(["variant", "ratio", "test MAE"], one_ratio)
                   if one_ratio else "")
                + _efficiency_block(cells))
    if not parts:
        return ""
    return ("## Full sweeps in progress — finished cells, not yet claims\n\n"
            "The full sweeps run in parts over several sessions (`docs/experiments.md`); each "
            "finished run is kept in `docs/results/<dataset>/cells/`. These cells are complete "
            "full-protocol runs, but a row with fewer than three seeds or a missing ratio is not "
            "a result of the experiment yet, so nothing here is counted in the claims above.\n\n"
            + "\n".join(parts) + "\n")


def _strip_title(md: str) -> str:
    lines = md.splitlines()
    if lines and lines[0].startswith("# "):
        lines = lines[1:]
    return "\n".join(lines).strip() + "\n"


def _strip_header(md: str) -> str:
    """Drop the bullet header an experiment's Markdown starts with: the report writes its own from
    the JSON, so old and new sidecars read alike."""
    lines = md.splitlines()
    i = 0
    while i < len(lines) and lines[i].startswith("- "):
        i += 1
    return "\n".join(lines[i:]).strip() + "\n"


def _demote(md: str, levels: int = 1) -> str:
    return "\n".join("#" * levels + ln if ln.startswith("#") else ln
                     for ln in md.splitlines()) + "\n"


def dataset_of(meta: dict[str, Any]) -> str:
    return str(meta.get("dataset") or meta.get("config", {}).get("dataset") or "unknown dataset")


def is_full(meta: dict[str, Any]) -> bool:
    """Only an explicit ``"quick": false`` counts (older sidecars without it do not)."""
    return meta.get("quick", True) is False


def table_facts(meta: dict[str, Any]) -> str:
    """Dataset, seeds, epochs, teacher (with its own score), git revision and machine."""
    c = meta.get("config", {})
    if meta.get("experiment") == "cost":
        return ""  # its own text states the machine, load, git revision and method

    quick = bool(c.get("quick", meta.get("quick", True)))
    preset = meta.get("preset") or ("quick" if quick else "full")
    facts = SimpleNamespace(  # the fields protocol_line reads, from the sidecar (old ones too)
        seeds=meta.get("seeds", c.get("seeds", [])), epochs=meta.get("epochs", c.get("epochs")),
        patience=meta.get("patience", c.get("patience")),
        batches_per_epoch=meta.get("batches_per_epoch", c.get("batches_per_epoch", 0)),
        val_batches=meta.get("val_batches", c.get("val_batches", 0)), protocol=lambda: preset)
    period = meta.get("period") or [c.get("start"), c.get("end")]
    prov = meta.get("provenance", {})
    untrained = meta.get("experiment") == "scalability"  # cost of the architectures alone
    dataset = (f"- dataset {dataset_of(meta)}"
               + (f" from {period[0] or 'start'} to {period[1] or 'end'}" if any(period)
                  else " (default period: 2019 for the built-in NYC data)"))
    lines = [
        f"- untrained models on {meta.get('device', 'cpu')}: memory and latency only (no "
        "training, so no protocol, teacher or seeds apply)", dataset,
    ] if untrained else [
        f"- {protocol_line(facts)}",  # type: ignore[arg-type]
        dataset,
        f"- teacher of the FlowDistill student: {teacher_line(meta.get('teacher'))}",
    ]
    if (not untrained and isinstance(meta.get("teacher"), dict)
            and meta["teacher"].get("kd_baselines")):
        lines.append(f"- {meta['teacher']['kd_baselines']}")
    lines.append(f"- created {prov.get('created')}, git {meta.get('git', prov.get('git'))}; "
                 f"machine {meta.get('machine', prov.get('machine'))}")
    if meta.get("gpu_cells"):
        lines.append(f"- trained on a GPU ({'; '.join(meta.get('gpu_machines', []))}), same code "
                     "and protocol: " + ", ".join(f"{m} {100 * r:g} % s{sd}"
                                                  for m, r, sd in meta["gpu_cells"]))
    return "\n".join(lines) + "\n\n"


def find_outputs(run_dirs: list[Path]) -> list[tuple[str, Path, dict[str, Any]]]:
    """Every experiment sidecar in the folders and their per-dataset subfolders."""
    found: list[tuple[str, Path, dict[str, Any]]] = []
    names = (*EXPERIMENTS, "cost")
    for d in run_dirs:
        if not d.is_dir():
            raise DataError(d, "not a folder")
        folders = [d] + sorted(x for x in d.iterdir() if x.is_dir() and x.name not in SKIP_DIRS)
        for folder in folders:
            for name in names:
                side = folder / f"{name}.json"
                if side.exists():
                    found.append((name, folder, json.loads(side.read_text())))
    return found


def headline_block(out: Path, run_dirs: list[Path]) -> str | None:
    """The lead's headline section, verbatim from the existing file, else rendered from JSON."""
    if out.exists():
        text = out.read_text()
        if HEADLINE_START in text and HEADLINE_END in text:
            a, b = text.index(HEADLINE_START), text.index(HEADLINE_END) + len(HEADLINE_END)
            return text[a:b]
    for d in run_dirs:
        side = d / "headline.json"
        if side.exists():
            return f"{HEADLINE_START}\n{render_headline(json.loads(side.read_text()))}{HEADLINE_END}"
    return None


def _headline_teacher_files(head: dict[str, Any]) -> set[str]:
    files = set()
    for key in ("teacher", "llm_mean_teacher", "ensemble_teacher", "strict_teacher"):
        t = head.get(key)
        if isinstance(t, dict) and t.get("file"):
            files.add(str(t["file"]))
    return files


def headline_teacher_note(run_dirs: list[Path],
                          full: list[tuple[str, Path, dict[str, Any]]]) -> str:
    """A line under the headline when the full-protocol tables of its dataset used another teacher
    file: the headline is frozen at its own revision, so its student numbers and the tables' need
    not agree, and a reader should compare students within one table."""
    head = next((json.loads((d / "headline.json").read_text()) for d in run_dirs
                 if (d / "headline.json").exists()), None)
    if head is None:
        return ""
    own = _headline_teacher_files(head)
    others: dict[str, dict[str, Any]] = {}
    for _, _, meta in full:
        t = meta.get("teacher")
        if (dataset_of(meta) == head.get("dataset") and isinstance(t, dict) and t.get("file")
                and str(t["file"]) not in own):
            others.setdefault(str(t["file"]), t)
    if not others:
        return ""
    mean = head.get("llm_mean_teacher") or head.get("teacher") or {}
    mean_mae = (mean.get("test") or {}).get("mae")
    theirs = "; ".join(
        f"`{f}`" + (f" (its own test MAE {t['test']['mae']:.3f})"
                    if isinstance(t.get("test"), dict) and "mae" in t["test"] else "")
        for f, t in sorted(others.items()))
    return (f"The headline was measured at git {head.get('git')} with its own teachers"
            + (f" (the mean of the LLM teacher's seeds: test MAE {mean_mae:.3f})"
               if isinstance(mean_mae, (int, float)) else "")
            + f". The full-protocol tables of {head.get('dataset')} below use another teacher "
            f"file: {theirs}, and the student's loss readings may differ between the two revisions "
            "(`docs/design-decisions.md`). Compare students within one table, not across.\n")


def headline_cells_note(run_dirs: list[Path]) -> str:
    """The headline's comparison as the sweep's kept cells make it today (same dataset, ratio and
    seeds, full protocol): the headline block is frozen at its revision and teacher, so a reader
    sees beside it what the current student, its no-teacher control and STID score."""
    from flowdistill.experiments.common import fmt_pm, mean_std

    head = next((json.loads((d / "headline.json").read_text()) for d in run_dirs
                 if (d / "headline.json").exists()), None)
    if head is None:
        return ""
    dataset, ratio = head.get("dataset"), float(head.get("train_ratio", float("nan")))
    seeds = [int(s) for s in head.get("seeds", [])]
    folder = next((d / dataset for d in run_dirs if (d / str(dataset) / "cells").is_dir()), None)
    if folder is None or not seeds:
        return ""
    cells = kept_cells(folder)
    said = []
    for name, label, needed in (
            ("flowdistill", "FlowDistill", True),
            ("flowdistill-strict-teacher", "FlowDistill with the strict teacher (tuned on no "
             "target slot beyond the student's)", False),
            (CONTROL, "the student without a teacher", True), ("stid", "STID", True)):
        by_seed = {int(c["config"]["run"]["seed"]): c for c in cells.get((name, ratio), [])}
        if not set(seeds) <= set(by_seed):
            if needed:  # not every seed kept yet: nothing to set beside the headline
                return ""
            continue
        maes = [by_seed[s]["test"]["mae"] for s in seeds]
        said.append(f"{label} {fmt_pm(*mean_std(maes), len(seeds))}")
    teacher = cells[("flowdistill", ratio)][0].get("teacher") or {}
    t_test = (teacher.get("test") or {}).get("mae")
    return (f"The sweep's kept cells on the same split ({dataset}, {ratio * 100:g} %, seeds "
            f"{', '.join(map(str, seeds))}, full protocol) give test MAE: {'; '.join(said)}"
            + (f" (FlowDistill's teacher: {teacher.get('model')}"
               + (f", trained on {teacher['trained_on']}" if teacher.get("trained_on") else "")
               + f", its own test MAE {t_test:.3f})" if isinstance(t_test, (int, float)) else "")
            + ". See \"Ratio sweep so far\" below.\n")


def _section(name: str, d: Path, meta: dict[str, Any], out: Path, level: int) -> tuple[str, list[str]]:
    reading = READINGS[name](meta)
    md_path = d / f"{name}.md"
    body = _strip_header(_strip_title(md_path.read_text())) if md_path.exists() else ""
    body = body.replace(f"]({name}.png)", f"]({_link(d / f'{name}.png', out)})")
    src = d / f"{name}.json"
    text = (f"{'#' * level} {meta.get('title', name)} — {dataset_of(meta)}\n\n"
            f"Source: `{src}`\n\n" + table_facts(meta) + _demote(body, level - 1)
            + ("\n**Reading:**\n\n" + "\n".join(f"- {r}" for r in reading) + "\n"
               if reading else ""))
    return text, reading


def build_report(run_dirs: list[Path], out: Path) -> Path:
    """Write ``out`` (Markdown) from the experiments found in ``run_dirs``."""
    found = find_outputs(run_dirs)
    headline = headline_block(out, run_dirs)
    if not found and headline is None:
        raise DataError(", ".join(map(str, run_dirs)),
                        f"no experiment outputs found (expected one of {', '.join(EXPERIMENTS)} "
                        ".json written by `flowdistill bench`)")
    order = (*EXPERIMENTS, "cost")
    found.sort(key=lambda t: (dataset_of(t[2]), order.index(t[0])))
    full = [t for t in found if t[0] != "cost" and is_full(t[2])]
    smoke = [t for t in found if t[0] != "cost" and not is_full(t[2])]
    cost = [t for t in found if t[0] == "cost"]
    parts = ["# Results", ""]
    if headline:
        parts += [headline, ""]
        for note in (headline_teacher_note(run_dirs, full), headline_cells_note(run_dirs)):
            if note:
                parts += [note]
    parts += [
        "Generated by `flowdistill bench report` from "
        + ", ".join(f"`{d}`" for d in dict.fromkeys(str(d) for d in run_dirs))
        + ". Every number below was written by the experiments themselves; the paper's numbers "
        "(NYC taxi, 263 zones, 2021) are shown beside ours on the taxi data only. Do not edit by "
        "hand: rerun the command.",
        "",
        "## Claims at a glance",
        "",
        "Full-protocol results only (the paper's epochs and patience, every training window; "
        "`\"quick\": false` in the JSON). Smoke readings are not claims: they are in their own "
        "section at the end.",
        "",
    ]
    summary: list[str] = []
    sections: list[str] = []
    for name, d, meta in full:
        text, reading = _section(name, d, meta, out, 3)
        seeds = meta.get("seeds", meta.get("config", {}).get("seeds", []))
        summary += [f"- {dataset_of(meta)}, {name} (seeds {', '.join(map(str, seeds))}): {r}"
                    for r in reading]
        sections.append(text)
    cost_sections: list[str] = []
    for name, d, meta in cost:
        cost_sections.append(_section(name, d, meta, out, 3)[0])  # a measurement, not a claim
    if not summary:
        summary = ["- none yet: no experiment has a full-protocol result (the sweeps and their "
                   "plan are in `docs/experiments.md`)."]
    text = "\n".join(parts) + "\n" + "\n".join(summary) + "\n\n"
    if sections:
        text += "## Full-protocol results\n\n" + "\n".join(sections) + "\n"
    text += progress_section(run_dirs, out)
    if cost_sections:
        text += "## Cost of each model\n\n" + "\n".join(cost_sections) + "\n"
    if smoke:
        text += (
            "## Smoke readings — QUICK preset or shortened training, NOT evidence\n\n"
            "These tables come from short runs (the QUICK preset: one seed, at most 6 epochs of 8 "
            "batches, or other shortened settings stated under each title). They check that the "
            "harness works end to end; they are far from convergence and say nothing for or "
            "against the paper. They are not counted in the claims above.\n\n")
        text += "\n".join(_section(name, d, meta, out, 3)[0] for name, d, meta in smoke)
    atomic_write_text(out, text)
    return out
