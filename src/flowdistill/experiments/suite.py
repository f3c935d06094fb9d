"""The paper's experiments (§4): ratios, horizons, volume, hparams, scalability, ablation.

Every function takes a :class:`BenchConfig`, trains (or reuses) its runs through
:func:`flowdistill.experiments.runs.run`, and writes NAME.csv / NAME.md / NAME.png / NAME.json into
``cfg.out``. The numbers in the outputs are only ever read from the runs' metrics.json files.
"""

from __future__ import annotations

import math
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np

from flowdistill.data.errors import DataError
from flowdistill.experiments import paper
from flowdistill.experiments.common import (
    CONTROL,
    OUTGROWN,
    OUTGROWN_SETTINGS,
    VAL_PICK,
    BenchConfig,
    RunCache,
    RunKey,
    finish,
    fmt,
    fmt_pm,
    machine_share,
    markdown_table,
    mean_std,
    pick_by_validation,
    pyplot,
    run_all,
)
from flowdistill.losses.distill import DistillConfig

HPARAM_GRID: dict[str, tuple[float, ...]] = {
    "lambda_tbl": (0.05, 0.10, 0.15, 0.20, 0.25),
    "delta": (1.0, 3.0, 10.0, 15.0, 30.0),
    "lambda_kl": (5e-4, 1e-3, 2e-3, 5e-3, 1e-2),
    "lambda_spa": (0.2, 0.4, 0.6, 0.8),
    "lambda_tem": (0.25, 0.30, 0.35, 0.40, 0.45),
}
_PAPER_LOSS = DistillConfig().to_dict()
ABLATIONS: dict[str, dict[str, Any]] = {
    "full": {},
    "no-tbl": {"use_tbl": False},
    "no-ib": {"use_ib": False},
    "no-spatial": {"use_spatial": False},
    "no-temporal": {"use_temporal": False},
    # the control: the same student and objective on its data alone (does the teacher pay?)
    "no-teacher": {k: v for k, v in DistillConfig().without_teacher().to_dict().items()
                   if v != _PAPER_LOSS[k]},
}
# Objective variants beyond the paper's Table 4, run on request (`bench ablation --variants`).
VARIANTS: dict[str, dict[str, Any]] = {
    **ABLATIONS,
    # the teacher's terms stop once the student validates below the teacher (DistillConfig)
    "until-outgrown": {"teacher_until": "outgrown"},
    # …only once it validates 3 % below the teacher: a student level with its teacher keeps it
    OUTGROWN.split("@")[1]: OUTGROWN_SETTINGS,
}
SCALABILITY_MODELS = ("flowdistill", "stid", "bigst", "stsgcn", "astgcn", "stwa", "easyst")


def _keys(
    models: tuple[str, ...], ratios: tuple[float, ...], seeds: tuple[int, ...]
) -> list[RunKey]:
    return [RunKey(m, r, s) for m in models for r in ratios for s in seeds]


def _agg(
    results: dict[RunKey, dict[str, Any]], keys: list[RunKey], get: Any
) -> tuple[float, float, int]:
    vals = [get(results[k]) for k in keys]
    m, s = mean_std(vals)
    return m, s, len(vals)


def _colors(models: list[str]) -> dict[str, Any]:
    plt = pyplot()
    cmap = plt.get_cmap("tab10")
    return {m: ("tab:blue" if m == "flowdistill" else cmap((i % 9) + 1))
            for i, m in enumerate(models)}


# =========================================================================================== ratios
def ratios(cfg: BenchConfig, control: bool = False, outgrown: bool = False) -> dict[str, Path]:
    """Table 3 / Fig. 3: every model × training ratio, MAE/RMSE mean ± std over seeds.

    ``control``: also the student without its teacher at every ratio and seed, and the row a
    user who checks the teacher on validation would deploy (per seed, whichever of the two
    validates lower): the teacher helps only where it knows more than the student.
    ``outgrown``: also the student whose teacher is switched off once it validates 3 % below it
    (one run; where the paper-reading run never got that far, it is that run)."""
    cfg.needs_teacher(cfg.models)
    cache = RunCache(cfg)
    keys = _keys(cfg.models, tuple(sorted(cfg.ratios)), cfg.seeds)
    shown = list(cfg.models)
    if control and "flowdistill" in cfg.models:
        keys += [RunKey("flowdistill", r, s, CONTROL, ABLATIONS["no-teacher"])
                 for r in sorted(cfg.ratios) for s in cfg.seeds]
        shown += [CONTROL, VAL_PICK]
    if outgrown and "flowdistill" in cfg.models:
        keys += [RunKey("flowdistill", r, s, OUTGROWN, OUTGROWN_SETTINGS)
                 for r in sorted(cfg.ratios) for s in cfg.seeds]
        shown += [OUTGROWN]
    results = run_all(cache, keys, "ratios")
    picked = {}  # VAL_PICK's run per (ratio, seed), under a key of its own
    for k in keys:
        if k.name == CONTROL:
            with_teacher = results[RunKey("flowdistill", k.ratio, k.seed)]
            picked[RunKey("flowdistill", k.ratio, k.seed, VAL_PICK)] = pick_by_validation(
                with_teacher, results[k])
    results = {**results, **picked}
    keys = keys + list(picked)
    rows: list[dict[str, Any]] = []
    for m in shown:
        for r in sorted(cfg.ratios):
            ks = [k for k in keys if k.name == m and k.ratio == r]
            mae, mae_sd, n = _agg(results, ks, lambda x: x["test"]["mae"])
            rmse, rmse_sd, _ = _agg(results, ks, lambda x: x["test"]["rmse"])
            pp = paper.paper_point(m, r) if paper.compares_with(cfg.dataset) else None
            rows.append({
                "model": m, "ratio": r, "seeds": n, "mae": mae, "mae_std": mae_sd, "rmse": rmse,
                "rmse_std": rmse_sd, "paper_mae": pp[0] if pp else None,
                "paper_rmse": pp[1] if pp else None,
                "epochs_run": float(np.mean([results[k]["fit"]["epochs_run"] for k in ks])),
                "seconds_per_epoch": float(np.mean([results[k]["fit"]["seconds_per_epoch"]
                                                    for k in ks])),
            })
    eff = data_efficiency(rows)
    body = _ratios_body(rows, eff, cfg)

    def plot(path: Path) -> None:
        plt = pyplot()
        fig, axes = plt.subplots(1, 2, figsize=(11, 4))
        colors = _colors(shown)
        for ax, metric in zip(axes, ("mae", "rmse"), strict=True):
            for m in shown:
                rr = [x for x in rows if x["model"] == m]
                ax.errorbar([100 * x["ratio"] for x in rr], [x[metric] for x in rr],
                            yerr=[x[f"{metric}_std"] for x in rr], marker="o", label=m,
                            color=colors[m], lw=2.5 if m == "flowdistill" else 1.2, capsize=2)
            ax.set_xlabel("training ratio (%)")
            ax.set_ylabel(metric.upper())
            ax.grid(alpha=0.3)
        axes[0].legend(fontsize=8)
        fig.suptitle("Test error vs training ratio")
        save_figure_safe(fig, path)

    return finish("ratios", "Error vs training ratio (Table 3 / Fig. 3)", cfg, rows, body, plot,
                  extra_meta={"efficiency": eff}, extra_csv={"efficiency": eff}, runs=results)


def data_efficiency(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Smallest ratio at which each model reaches FlowDistill's MAE at its smallest ratio (10 %)."""
    fd = sorted((x for x in rows if x["model"] == "flowdistill"), key=lambda x: x["ratio"])
    if not fd:
        return []
    ref_ratio, ref = fd[0]["ratio"], fd[0]["mae"]
    out = []
    for m in dict.fromkeys(x["model"] for x in rows):
        if m == "flowdistill":
            continue
        reached = [x["ratio"] for x in sorted(rows, key=lambda x: x["ratio"])
                   if x["model"] == m and x["mae"] <= ref]
        out.append({"model": m, "reference_ratio": ref_ratio, "reference_mae": ref,
                    "reached_at": reached[0] if reached else None})
    return out


def _ratios_body(rows: list[dict[str, Any]], eff: list[dict[str, Any]], cfg: BenchConfig) -> str:
    ratios_ = sorted(cfg.ratios)
    header = ["model"] + [f"{100 * r:g}% MAE / RMSE" for r in ratios_]
    table_rows = []
    for m in dict.fromkeys(x["model"] for x in rows):
        cells = [f"**{m}**" if m == "flowdistill" else m]
        for r in ratios_:
            x = next(x for x in rows if x["model"] == m and x["ratio"] == r)
            cell = f"{fmt_pm(x['mae'], x['mae_std'], x['seeds'], 2)} / " \
                   f"{fmt_pm(x['rmse'], x['rmse_std'], x['seeds'], 2)}"
            if x["paper_mae"] is not None:
                cell += f" (paper {x['paper_mae']:.2f} / {x['paper_rmse']:.2f})"
            cells.append(cell)
        table_rows.append(cells)
    best = []
    for r in ratios_:
        rr = [x for x in rows if x["ratio"] == r and not math.isnan(x["mae"])]
        if rr:
            b = min(rr, key=lambda x: x["mae"])
            best.append(f"{100 * r:g}%: {b['model']}")
    if paper.compares_with(cfg.dataset):
        text = ("Test MAE / RMSE (mean ± std over seeds); the paper's NYC Table 3 value in "
                "brackets (263 zones, 2021; ours: the dataset above, so compare rankings, not "
                "values).\n\n")
    else:
        text = ("Test MAE / RMSE (mean ± std over seeds). The paper has no table for this "
                "dataset, so no paper numbers are shown.\n\n")
    text += markdown_table(header, table_rows)
    text += "\nLowest MAE per ratio: " + ", ".join(best) + "\n"
    if eff:
        text += (f"\n## Data efficiency\n\nSmallest training ratio at which each model reaches "
                 f"FlowDistill's MAE at {100 * eff[0]['reference_ratio']:g}% "
                 f"({eff[0]['reference_mae']:.3f}), among the ratios run:\n\n")
        text += markdown_table(["model", "reaches it at"], [
            [e["model"], f"{100 * e['reached_at']:g}%" if e["reached_at"] is not None
             else "not reached"] for e in eff])
    return text


def save_figure_safe(fig: Any, path: Path) -> None:
    from flowdistill.experiments.common import save_figure

    save_figure(fig, path)


# ========================================================================================= horizons
def horizons(cfg: BenchConfig, ratio: float = 0.1) -> dict[str, Path]:
    """Fig. 5: error per horizon step 1…12 of each model at one training ratio."""
    cfg.needs_teacher(cfg.models)
    cache = RunCache(cfg)
    keys = _keys(cfg.models, (ratio,), cfg.seeds)
    results = run_all(cache, keys, "horizons")
    rows = []
    for m in cfg.models:
        ks = [k for k in keys if k.model == m]
        steps = len(results[ks[0]]["test"]["horizon"])
        for h in range(steps):
            mae, mae_sd, n = _agg(results, ks, lambda x, h=h: x["test"]["horizon"][h]["mae"])
            rmse, rmse_sd, _ = _agg(results, ks, lambda x, h=h: x["test"]["horizon"][h]["rmse"])
            rows.append({"model": m, "ratio": ratio, "step": h + 1, "seeds": n, "mae": mae,
                         "mae_std": mae_sd, "rmse": rmse, "rmse_std": rmse_sd})
    steps = sorted({x["step"] for x in rows})
    table = [[m] + [f"{x['mae']:.2f} / {x['rmse']:.2f}" for x in rows if x["model"] == m]
             for m in cfg.models]
    body = (f"Test MAE / RMSE per forecast step (step k = k × 30 min ahead) at a "
            f"{100 * ratio:g}% training ratio, mean over seeds. The paper does not state the ratio "
            "of its Fig. 5; we use 10%, its headline data-scarce setting.\n\n")
    body += markdown_table(["model"] + [str(s) for s in steps], table)

    def plot(path: Path) -> None:
        plt = pyplot()
        fig, axes = plt.subplots(1, 2, figsize=(11, 4))
        colors = _colors(list(cfg.models))
        for ax, metric in zip(axes, ("mae", "rmse"), strict=True):
            for m in cfg.models:
                rr = [x for x in rows if x["model"] == m]
                ax.plot([x["step"] for x in rr], [x[metric] for x in rr], marker="o", label=m,
                        color=colors[m], lw=2.5 if m == "flowdistill" else 1.2)
            ax.set_xlabel("horizon step (× 30 min)")
            ax.set_ylabel(metric.upper())
            ax.grid(alpha=0.3)
        axes[0].legend(fontsize=8)
        fig.suptitle(f"Error per horizon step, {100 * ratio:g}% training")
        save_figure_safe(fig, path)

    return finish("horizons", "Error per horizon step (Fig. 5)", cfg, rows, body, plot,
                  extra_meta={"ratio": ratio}, extra_header=f"training ratio {100 * ratio:g}%",
                  runs=results)


# =========================================================================================== volume
def test_predictions(cache: RunCache, key: RunKey) -> tuple[np.ndarray, np.ndarray, Any]:
    """Reload a finished run's model.pt and forecast its test windows: (pred, truth, windows)."""
    import torch

    from flowdistill.data.windows import WindowConfig, Windows
    from flowdistill.engine.trainer import Trainer
    from flowdistill.experiments.runs import cached_dataset
    from flowdistill.models.base import ModelContext, build_model

    spec = cache.spec(key)
    windows = Windows(cached_dataset(spec), WindowConfig(train_ratio=key.ratio))
    options = dict(spec.model_options)
    if key.model == "flowdistill":
        options.setdefault("use_ib", spec.distill.use_ib)
    model = build_model(key.model, ModelContext.from_windows(windows), options)
    if hasattr(model, "fit_statistics"):
        b = windows.bounds
        model.fit_statistics(windows.scaled[: b.train_end], windows.tod[: b.train_end],
                             windows.dow[: b.train_end])
    weights = cache.folder(key) / "model.pt"
    if not weights.exists():
        raise DataError(weights, "missing: the run finished without saving its weights")
    model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    ids = windows.ids("test")
    pred = Trainer(cache.train_config()).predict(model, windows, ids)
    return pred, windows.targets(ids), windows


def volume(cfg: BenchConfig, ratio: float = 0.5, buckets: int = 5) -> dict[str, Path]:
    """Fig. 6: error per bucket of regions by traffic volume (mean training flow), at 50 %."""
    from flowdistill.data.windows import WindowConfig, Windows
    from flowdistill.experiments.runs import cached_dataset
    from flowdistill.metrics import by_volume, by_volume_from_sums

    cfg.needs_teacher(cfg.models)
    cache = RunCache(cfg)
    keys = _keys(cfg.models, (ratio,), cfg.seeds)
    results = run_all(cache, keys, "volume")
    windows = Windows(cached_dataset(cache.spec(keys[0])), WindowConfig(train_ratio=ratio))
    # float64: with float32 volumes NumPy compares against the float edges in float32, and
    # the busiest region would fall outside the top bucket's nudged upper edge.
    vol = windows.raw[: windows.bounds.train_end].mean(axis=(0, 2), dtype=np.float64)
    qs = np.quantile(vol, np.linspace(0, 1, buckets + 1))
    qs[-1] = np.nextafter(qs[-1], np.inf)
    edges = [float(q) for q in qs]
    threshold = cache.train_config().mask_threshold
    per: dict[tuple[str, int], list[dict[str, float]]] = {}
    for k in keys:
        sums = results[k]["test"].get("region")
        if sums is not None:  # the run's own per-region sums: exact, and no weights needed
            buckets_k = by_volume_from_sums(sums, vol, edges)
        else:  # a run from before the sums were saved: forecast again from its weights
            pred, truth, _ = test_predictions(cache, k)
            buckets_k = by_volume(pred, truth, vol, edges, threshold)
        for i, s in enumerate(buckets_k):
            per.setdefault((k.model, i), []).append(s)
    rows = []
    for (m, i), ss in per.items():
        mae, mae_sd = mean_std([s["mae"] for s in ss])
        rmse, rmse_sd = mean_std([s["rmse"] for s in ss])
        rows.append({"model": m, "ratio": ratio, "bucket": i + 1, "low": ss[0]["low"],
                     "high": ss[0]["high"],
                     "regions": ss[0]["regions"], "seeds": len(ss), "mae": mae, "mae_std": mae_sd,
                     "rmse": rmse, "rmse_std": rmse_sd})
    nb = max(x["bucket"] for x in rows)
    bucket_names = []
    for b in range(1, nb + 1):
        x = next(x for x in rows if x["bucket"] == b)
        bucket_names.append(f"{b}: {x['low']:.0f}–{x['high']:.0f} ({x['regions']} regions)")
    table = [[m] + [next((f"{x['mae']:.2f} / {x['rmse']:.2f}" for x in rows
                          if x["model"] == m and x["bucket"] == b), "–") for b in range(1, nb + 1)]
             for m in cfg.models]
    body = (f"Test MAE / RMSE per bucket of regions, at a {100 * ratio:g}% training ratio (the "
            "paper's Fig. 6 is at 50%). A region's volume is its mean flow per slot (inflow and "
            f"outflow) over the training part; buckets are volume quintiles "
            f"({buckets} buckets, low to high).\n\n")
    body += markdown_table(["model"] + bucket_names, table)

    def plot(path: Path) -> None:
        plt = pyplot()
        fig, axes = plt.subplots(1, 2, figsize=(12, 4))
        colors = _colors(list(cfg.models))
        width = 0.8 / max(len(cfg.models), 1)
        for ax, metric in zip(axes, ("mae", "rmse"), strict=True):
            for j, m in enumerate(cfg.models):
                rr = sorted((x for x in rows if x["model"] == m), key=lambda x: x["bucket"])
                ax.bar([x["bucket"] + (j - (len(cfg.models) - 1) / 2) * width for x in rr],
                       [x[metric] for x in rr], width, label=m, color=colors[m])
            ax.set_xticks(range(1, nb + 1))
            ax.set_xlabel("volume bucket (low → high)")
            ax.set_ylabel(metric.upper())
            ax.grid(alpha=0.3, axis="y")
        axes[0].legend(fontsize=8)
        fig.suptitle(f"Error by regional traffic volume, {100 * ratio:g}% training")
        save_figure_safe(fig, path)

    return finish("volume", "Error by traffic volume (Fig. 6)", cfg, rows, body, plot,
                  extra_meta={"ratio": ratio, "edges": edges},
                  extra_header=f"training ratio {100 * ratio:g}%", runs=results)


# ========================================================================================== hparams
def hparams(
    cfg: BenchConfig, ratio: float = 0.1, grid: dict[str, tuple[float, ...]] | None = None
) -> dict[str, Path]:
    """Fig. 7–9: one loss weight at a time over the paper's grid, the others at their defaults."""
    cfg.needs_teacher(["flowdistill"])
    defaults = DistillConfig()
    if grid is None:
        grid = HPARAM_GRID if not cfg.quick else {  # quick: the grid's ends and the default
            k: tuple(sorted({v[0], float(getattr(defaults, k)), v[-1]}))
            for k, v in HPARAM_GRID.items()
        }
    known = {f.name for f in fields(DistillConfig)}
    bad = set(grid) - known
    if bad:
        raise DataError("hparams", f"unknown loss option(s) {sorted(bad)}")
    cache = RunCache(cfg)
    points: list[tuple[str, float, RunKey]] = []
    for name, values in grid.items():
        for v in values:
            is_default = math.isclose(float(getattr(defaults, name)), v)
            variant = "flowdistill" if is_default else f"flowdistill@{name}={v:g}"
            for s in cfg.seeds:
                points.append((name, v, RunKey("flowdistill", ratio, s, variant,
                                               {} if is_default else {name: v})))
    unique = list(dict.fromkeys(k for _, _, k in points))
    results = run_all(cache, unique, "hparams")
    rows = []
    for name, values in grid.items():
        for v in values:
            ks = [k for n, vv, k in points if n == name and vv == v]
            variant = ks[0].name if ks else "flowdistill"
            row: dict[str, Any] = {"model": variant, "ratio": ratio, "param": name, "value": v,
                                   "default": math.isclose(float(getattr(defaults, name)), v),
                                   "paper_best": math.isclose(paper.BEST_HPARAMS.get(name, -1), v),
                                   "seeds": len(ks)}
            for split in ("val", "test"):
                for metric in ("mae", "rmse"):
                    m, sd = mean_std([results[k][split][metric] for k in ks])
                    row[f"{split}_{metric}"], row[f"{split}_{metric}_std"] = m, sd
            for metric in ("mae", "rmse"):  # the table's columns under the common row names
                row[metric], row[f"{metric}_std"] = row[f"test_{metric}"], row[f"test_{metric}_std"]
            rows.append(row)
    body = (f"The FlowDistill student at a {100 * ratio:g}% training ratio; each loss weight "
            "varied alone over the paper's grid (§4.5), the others at their defaults. "
            "Validation and test MAE / RMSE, mean over seeds; ✓ = the paper's best value, "
            "★ = best validation MAE here.\n\n")
    for name in grid:
        rr = [x for x in rows if x["param"] == name]
        best = min(rr, key=lambda x: x["val_mae"])
        body += f"### {name}\n\n" + markdown_table(
            ["value", "val MAE", "val RMSE", "test MAE", "test RMSE"],
            [[f"{x['value']:g}" + (" ✓" if x["paper_best"] else "") + (" ★" if x is best else ""),
              fmt(x["val_mae"]), fmt(x["val_rmse"]), fmt(x["test_mae"]), fmt(x["test_rmse"])]
             for x in rr]) + "\n"

    def plot(path: Path) -> None:
        plt = pyplot()
        fig, axes = plt.subplots(2, len(grid), figsize=(3.2 * len(grid), 6), squeeze=False)
        for j, name in enumerate(grid):
            rr = [x for x in rows if x["param"] == name]
            for i, metric in enumerate(("mae", "rmse")):
                ax = axes[i][j]
                for split, style in (("val", "--"), ("test", "-")):
                    ax.plot([x["value"] for x in rr], [x[f"{split}_{metric}"] for x in rr],
                            style, marker="o", label=split)
                if name == "lambda_kl":
                    ax.set_xscale("log")
                ax.axvline(paper.BEST_HPARAMS.get(name, float("nan")), color="grey", lw=0.8, ls=":")
                ax.set_title(name if i == 0 else "")
                ax.set_ylabel(metric.upper() if j == 0 else "")
                ax.grid(alpha=0.3)
        axes[0][0].legend(fontsize=8)
        fig.suptitle(f"Loss weights, student at {100 * ratio:g}% (dotted: paper's best)")
        fig.tight_layout()
        save_figure_safe(fig, path)

    return finish("hparams", "Hyper-parameters of the loss (Fig. 7–9)", cfg, rows, body, plot,
                  extra_meta={"ratio": ratio, "grid": {k: list(v) for k, v in grid.items()}},
                  extra_header=f"training ratio {100 * ratio:g}%", runs=results)


# ========================================================================================= ablation
def ablation(
    cfg: BenchConfig, ratio: float = 0.1, variants: tuple[str, ...] = tuple(ABLATIONS)
) -> dict[str, Path]:
    """Table 4: the student without each of its components, at one training ratio."""
    cfg.needs_teacher(["flowdistill"])
    bad = [v for v in variants if v not in VARIANTS]
    if bad or "full" not in variants:
        raise DataError("ablation", f"variants must include 'full' and come from {list(VARIANTS)}")
    cache = RunCache(cfg)
    keys = [RunKey("flowdistill", ratio, s, "flowdistill" if not VARIANTS[v] else f"flowdistill@{v}",
                   VARIANTS[v]) for v in variants for s in cfg.seeds]
    results = run_all(cache, keys, "ablation")
    rows = []
    for name in variants:
        variant = "flowdistill" if name == "full" else f"flowdistill@{name}"
        ks = [k for k in keys if k.name == variant]
        mae, mae_sd, n = _agg(results, ks, lambda x: x["test"]["mae"])
        rmse, rmse_sd, _ = _agg(results, ks, lambda x: x["test"]["rmse"])
        p = paper.TABLE4.get(name) if paper.compares_with(cfg.dataset) else None
        rows.append({"model": variant, "variant": name, "ratio": ratio, "seeds": n, "mae": mae,
                     "mae_std": mae_sd, "rmse": rmse, "rmse_std": rmse_sd,
                     "paper_mae": p[0] if p else None, "paper_rmse": p[1] if p else None})
    full = next(x for x in rows if x["variant"] == "full")
    for x in rows:
        x["mae_change_pct"] = 100 * (x["mae"] / full["mae"] - 1)
        x["rmse_change_pct"] = 100 * (x["rmse"] / full["rmse"] - 1)
        x["paper_mae_change_pct"] = (100 * (x["paper_mae"] / full["paper_mae"] - 1)
                                     if x["paper_mae"] is not None and full["paper_mae"] else None)
    body = (f"Test MAE / RMSE at a {100 * ratio:g}% training ratio, mean ± std over seeds, and the "
            "change against the full model. The paper's Table 4 numbers (NYC taxi; shown for "
            "the taxi data only) are beside ours: its "
            f"FlowDistill row equals its Table 3 column at {100 * paper.TABLE4_RATIO:g}%, so the "
            f"paper's ablation was run at {100 * paper.TABLE4_RATIO:g}% (use --train-ratio "
            f"{paper.TABLE4_RATIO:g} to match it).\n\n")
    body += markdown_table(
        ["variant", "MAE", "RMSE", "ΔMAE", "ΔRMSE", "paper MAE / RMSE", "paper ΔMAE"],
        [[x["variant"], fmt_pm(x["mae"], x["mae_std"], x["seeds"]),
          fmt_pm(x["rmse"], x["rmse_std"], x["seeds"]), f"{x['mae_change_pct']:+.1f}%",
          f"{x['rmse_change_pct']:+.1f}%",
          f"{x['paper_mae']:.2f} / {x['paper_rmse']:.2f}" if x["paper_mae"] is not None else "–",
          f"{x['paper_mae_change_pct']:+.1f}%" if x["paper_mae_change_pct"] is not None else "–"]
         for x in rows])

    def plot(path: Path) -> None:
        plt = pyplot()
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
        names = [x["variant"] for x in rows]
        for ax, metric in zip(axes, ("mae", "rmse"), strict=True):
            ax.bar(names, [x[metric] for x in rows], yerr=[x[f"{metric}_std"] for x in rows],
                   color=["tab:blue"] + ["tab:grey"] * (len(rows) - 1), capsize=3)
            ax.set_ylabel(metric.upper())
            lo = min(x[metric] for x in rows)
            ax.set_ylim(lo * 0.9, None)
            ax.tick_params(axis="x", rotation=20)
            ax.grid(alpha=0.3, axis="y")
        fig.suptitle(f"Ablation, {100 * ratio:g}% training")
        save_figure_safe(fig, path)

    return finish("ablation", "Ablation (Table 4)", cfg, rows, body, plot,
                  extra_meta={"ratio": ratio}, extra_header=f"training ratio {100 * ratio:g}%",
                  runs=results)


# ====================================================================================== scalability
def scalability(
    cfg: BenchConfig,
    batch_sizes: tuple[int, ...] = (16, 32, 64, 128, 256, 512),
    multiples: tuple[int, ...] = (1, 2, 3, 4, 5),
    ratio: float = 0.1,
    latency_batch: int = 256,
    repeats: int = 1,
) -> dict[str, Path]:
    """Fig. 10: peak forward memory vs batch size, inference latency vs test size; one process."""
    from flowdistill.experiments import scale

    models = [m for m in cfg.models if m not in ("ha", "last-value")] or list(SCALABILITY_MODELS)
    res = scale.measure(cfg, models, batch_sizes, multiples, ratio, latency_batch, repeats)
    rows = [{**x, "ratio": ratio} for x in res["rows"]]
    mem = [x for x in rows if x["kind"] == "memory"]
    lat = [x for x in rows if x["kind"] == "latency"]
    body = (f"Untrained models (weights do not change the cost), inputs from the test windows at "
            f"{100 * ratio:g}% training, device {res['device']}. "
            f"**Memory**: {res['memory_method']}. "
            f"**Latency**: wall time of forward passes (no_grad, eval mode, batches of "
            f"{latency_batch}) over the test windows tiled {multiples[0]}×…{multiples[-1]}× "
            f"({res['test_windows']} windows at 1×), median of {repeats} repeat(s), data "
            f"already in tensors; {machine_share(res.get('other_cores'))}.\n\n")
    body += "### Peak forward memory (MiB) vs batch size\n\n" + markdown_table(
        ["model"] + [str(b) for b in batch_sizes],
        [[m] + [fmt(next((x["value"] for x in mem if x["model"] == m and x["x"] == b), None), 1)
                for b in batch_sizes] for m in models])
    body += "\n### Inference latency (s) vs test size\n\n" + markdown_table(
        ["model"] + [f"{k}× ({k * res['test_windows']})" for k in multiples],
        [[m] + [fmt(next((x["value"] for x in lat if x["model"] == m and x["x"] == k), None), 3)
                for k in multiples] for m in models])
    f = res.get("flops")
    if f:
        body += (f"\n### Student FLOPs\n\nFlowDistill forward: {f['flops_per_window']:,} FLOPs per "
                 f"window; measured matmul rate on this machine {f['matmul_gflops']:.1f} GFLOP/s "
                 f"(a {f['matmul_n']}×{f['matmul_n']} torch.mm); at {multiples[-1]}× the student's "
                 f"latency is {f['latency_s']:.3f} s against {f['ideal_s']:.3f} s if it ran at the "
                 f"matmul rate: ratio {f['ratio']:.2f} (overhead of small matrices, activations "
                 "and memory traffic).\n")

    def plot(path: Path) -> None:
        plt = pyplot()
        fig, axes = plt.subplots(1, 2, figsize=(11, 4))
        colors = _colors(models)
        for m in models:
            rr = [x for x in mem if x["model"] == m]
            axes[0].plot([x["x"] for x in rr], [x["value"] for x in rr], marker="o", label=m,
                         color=colors[m], lw=2.5 if m == "flowdistill" else 1.2)
            rr = [x for x in lat if x["model"] == m]
            axes[1].plot([x["x"] * res["test_windows"] for x in rr], [x["value"] for x in rr],
                         marker="o", label=m, color=colors[m],
                         lw=2.5 if m == "flowdistill" else 1.2)
        axes[0].set_xscale("log", base=2)
        axes[0].set_xlabel("batch size")
        axes[0].set_ylabel("peak forward memory (MiB)")
        axes[1].set_xlabel("test windows")
        axes[1].set_ylabel("inference latency (s)")
        for ax in axes:
            ax.grid(alpha=0.3)
        axes[0].legend(fontsize=8)
        fig.suptitle(f"Scalability on {res['device']}")
        save_figure_safe(fig, path)

    return finish("scalability", "Scalability (Fig. 10)", cfg, rows, body, plot,
                  extra_meta={k: v for k, v in res.items() if k != "rows"},
                  extra_header=f"device {res['device']}; models untrained")


EXPERIMENTS = ("ratios", "horizons", "volume", "hparams", "scalability", "ablation")

