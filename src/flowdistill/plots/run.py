"""PNG views of a trained run: did it learn, does it follow the truth, where does it miss.

Numbers in metrics.json say how good a model is on average; these say where and when. All three
plots read the run folder alone (plus the data for the truth, and the zone polygons for the map).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.collections import PatchCollection  # noqa: E402
from matplotlib.patches import Polygon  # noqa: E402

from flowdistill.data.dataset import FlowDataset  # noqa: E402
from flowdistill.data.errors import DataError  # noqa: E402
from flowdistill.data.geo import NYC_ZONE_ALIASES, read_zones  # noqa: E402
from flowdistill.data.sources import resolve_data_dir  # noqa: E402
from flowdistill.serving.forecaster import Forecaster  # noqa: E402

DPI = 120


def _save(fig: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.png")
    fig.savefig(tmp, dpi=DPI, bbox_inches="tight")
    plt.close(fig)
    os.replace(tmp, path)
    return path


# ------------------------------------------------------------------------------ learning curves
def learning_curves(metrics: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Training loss and validation MAE per epoch (best epoch marked) from metrics.json."""
    history = (metrics.get("fit") or {}).get("history") or []
    fig, ax = plt.subplots(figsize=(7, 4))
    title = f"{metrics.get('model', '?')} on {(metrics.get('dataset') or {}).get('name', '?')}"
    if not history:
        ax.text(0.5, 0.5, "no epochs: this model is fitted without gradient training",
                ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
    else:
        epochs = [r["epoch"] for r in history]  # counted from 1, as printed
        ax.plot(epochs, [r["train_loss"] for r in history], "o-", label="training objective")
        ax.plot(epochs, [r["val_mae"] for r in history], "s-", label="validation MAE")
        best = (metrics.get("fit") or {}).get("best_epoch")  # from 1, as in metrics.json
        if best is not None and 1 <= best <= max(epochs):
            ax.axvline(best, color="grey", ls=":", label=f"best epoch ({best})")
        ax.set_xlabel("epoch")
        ax.set_ylabel("objective / MAE (trips per slot)")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(alpha=0.3)
        ax.legend()
    test = metrics.get("test") or {}
    if "mae" in test:
        title += f" — test MAE {test['mae']:.2f}, RMSE {test['rmse']:.2f}"
    ax.set_title(title)
    return _save(fig, Path(path))


# ------------------------------------------------------------------------------ forecasts
def test_forecasts(
    forecaster: Forecaster, ds: FlowDataset, first: int, last: int, batch: int = 256
) -> tuple[np.ndarray, np.ndarray]:
    """Forecasts and truth (W, H, N, C) for the windows whose first target slot is first…last."""
    L, H = forecaster.input_len, forecaster.output_len
    ok = ~ds.missing_mask()
    ids = [t for t in range(max(first, L), min(last, ds.num_slots - H) + 1) if ok[t - L : t + H].all()]
    if not ids:
        raise DataError(ds.source or ds.name, "no complete window in the chosen period")
    preds = []
    for i in range(0, len(ids), batch):
        chunk = np.asarray(ids[i : i + batch])
        hist = ds.flows[chunk[:, None] + np.arange(-L, 0)]
        preds.append(forecaster.forecast_raw(hist, ds.timestamps[chunk]))
    truth = ds.flows[np.asarray(ids)[:, None] + np.arange(H)]
    return np.concatenate(preds), truth.astype(np.float32)


def forecast_vs_truth(
    forecaster: Forecaster, ds: FlowDataset, zones: Sequence[str], week_start: pd.Timestamp,
    path: str | os.PathLike[str], horizon: int = 1,
) -> Path:
    """Predicted against true flow, per zone and channel, over one week, ``horizon`` steps ahead."""
    H = forecaster.output_len
    if not 1 <= horizon <= H:
        raise DataError("--horizon", f"must be between 1 and {H}, got {horizon}")
    unknown = [z for z in zones if z not in forecaster.zones]
    if unknown:
        raise DataError("--zones", f"unknown zones {unknown}; the model's zones are "
                        f"{', '.join(forecaster.zones[:8])} …")
    step = pd.Timedelta(minutes=ds.interval_minutes)
    start = pd.Timestamp(week_start).normalize()
    t0 = int((start - ds.start) / step)
    t1 = int((start + pd.Timedelta(days=7) - ds.start) / step) - 1
    if t1 < 0 or t0 >= ds.num_slots:
        raise DataError("--week", f"{start.date()} is outside the data ({ds.start} … {ds.end})")
    # Windows whose target `horizon` lands in the week: first target slot = slot - horizon + 1.
    pred, truth = test_forecasts(forecaster, ds, t0 - horizon + 1, t1 - horizon + 1)
    first_id = max(t0 - horizon + 1, forecaster.input_len)
    ok = ~ds.missing_mask()
    L = forecaster.input_len
    ids = [t for t in range(first_id, min(t1 - horizon + 1, ds.num_slots - H) + 1)
           if ok[t - L : t + H].all()]
    times = ds.timestamps[np.asarray(ids) + horizon - 1]
    cols = [forecaster.zones.index(z) for z in zones]
    names = forecaster.bundle.region_names
    channels = forecaster.bundle.channels
    fig, axes = plt.subplots(len(zones), len(channels), figsize=(12, 2.6 * len(zones)),
                             squeeze=False, sharex=True)
    for r, (z, n) in enumerate(zip(zones, cols, strict=True)):
        for c, ch in enumerate(channels):
            ax = axes[r, c]
            ax.plot(times, truth[:, horizon - 1, n, c], color="black", lw=1.2, label="true")
            ax.plot(times, pred[:, horizon - 1, n, c], color="tab:orange", lw=1.2, label="predicted")
            mae = float(np.abs(pred[:, horizon - 1, n, c] - truth[:, horizon - 1, n, c]).mean())
            ax.set_title(f"zone {z} ({names[n]}) — {ch}, MAE {mae:.1f}", fontsize=9)
            ax.set_ylabel("trips / slot")
            ax.grid(alpha=0.3)
            if r == 0 and c == 0:
                ax.legend(loc="upper left", fontsize=8)
    fig.autofmt_xdate()
    minutes = horizon * ds.interval_minutes
    fig.suptitle(f"{forecaster.bundle.model}: forecast {minutes} min ahead vs truth, week of "
                 f"{start.date()}", y=1.0)
    fig.tight_layout()
    return _save(fig, Path(path))


# ------------------------------------------------------------------------------ error map
def zone_errors(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Mean absolute error per zone over windows, horizon steps and channels."""
    return np.abs(pred - truth).mean(axis=(0, 1, 3))


def error_map(
    zone_ids: Sequence[str], errors: np.ndarray, shapefile: str | os.PathLike[str],
    path: str | os.PathLike[str], title: str = "",
) -> Path:
    """The zones' polygons coloured by forecast error (trips per slot)."""
    zones = read_zones(shapefile, "LocationID", "zone").subset(list(zone_ids), NYC_ZONE_ALIASES)
    patches, values = [], []
    for geom, err in zip(zones.geometries, errors, strict=True):
        parts = getattr(geom, "geoms", [geom])
        for part in parts:
            patches.append(Polygon(np.asarray(part.exterior.coords), closed=True))
            values.append(float(err))
    fig, ax = plt.subplots(figsize=(6, 9))
    coll = PatchCollection(patches, cmap="viridis", edgecolor="white", linewidth=0.4)
    coll.set_array(np.asarray(values))
    ax.add_collection(coll)
    ax.autoscale_view()
    ax.set_aspect("equal")
    ax.set_axis_off()
    fig.colorbar(coll, ax=ax, shrink=0.6, label="MAE (trips per slot, all steps and channels)")
    worst = np.argsort(errors)[::-1][:3]
    for i in worst:
        c = zones.geometries[i].representative_point()
        ax.annotate(zones.names[i], (c.x, c.y), fontsize=7, ha="center", color="darkred",
                    bbox={"boxstyle": "round,pad=0.15", "fc": "white", "alpha": 0.7, "lw": 0})
    ax.set_title(title)
    return _save(fig, Path(path))


# ------------------------------------------------------------------------------ all of a run
def run_history(run_dir: Path) -> dict[str, Any]:
    """metrics.json of a finished run, or what the last checkpoint of a running one knows."""
    metrics_path = run_dir / "metrics.json"
    if metrics_path.exists():
        return json.loads(metrics_path.read_text())
    last = run_dir / "checkpoints" / "last.pt"
    if not last.exists():
        raise DataError(run_dir, "neither metrics.json nor checkpoints/last.pt: nothing to plot")
    import torch

    state = torch.load(last, map_location="cpu", weights_only=False)  # our own checkpoint
    config = json.loads((last.parent / "run.json").read_text()) if (
        last.parent / "run.json").exists() else {}
    return {
        "model": config.get("model", "run in progress"),
        "dataset": {"name": config.get("dataset", "?")},
        "fit": {"history": state.get("history", []),  # the checkpoint counts from 0
                "best_epoch": state["best_epoch"] + 1 if state.get("best_epoch", -1) >= 0 else None},
    }


def plot_run(
    run_dir: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    kinds: Sequence[str] = ("curves", "forecast", "map"),
    zones: Sequence[str] | None = None,
    week: str | None = None,
    horizon: int = 1,
    data: str | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    note: Callable[[str], None] | None = None,
) -> list[Path]:
    """The chosen plots of a run as PNGs in ``out_dir``; returns the files written.

    A map needs the zones' polygons: when the run's zones are not NYC taxi zones it is skipped with
    a ``note`` if other plots were asked for too, and is an error if it was the only one.
    """
    from flowdistill.serving.inputs import load_input

    run_dir, out_dir = Path(run_dir), Path(out_dir)
    written: list[Path] = []
    if "curves" in kinds:
        written.append(learning_curves(run_history(run_dir), out_dir / "learning_curves.png"))
    if not {"forecast", "map"} & set(kinds):
        return written
    forecaster = Forecaster.from_run(run_dir)
    ds = forecaster.conform(load_input(data, forecaster, data_dir))
    b = forecaster.bundle
    test_start = pd.Timestamp(b.dataset.get("test_start") or ds.timestamps[int(0.9 * ds.num_slots)])
    test_end = pd.Timestamp(b.dataset.get("end") or ds.end)
    step = pd.Timedelta(minutes=ds.interval_minutes)
    if "forecast" in kinds:
        if zones is None:
            volume = ds.flows.sum(axis=(0, 2))
            zones = [forecaster.zones[i] for i in np.argsort(volume)[::-1][:3]]
        start = pd.Timestamp(week) if week else test_start.normalize() + pd.Timedelta(days=1)
        written.append(forecast_vs_truth(forecaster, ds, zones, start,
                                         out_dir / "forecast_vs_truth.png", horizon))
    if "map" in kinds:
        shp = resolve_data_dir(data_dir) / "nyc-taxi-zones" / "taxi_zones.shp"
        try:
            read_zones(shp, "LocationID", "zone").subset(list(forecaster.zones), NYC_ZONE_ALIASES)
        except DataError as exc:
            if len(kinds) == 1:
                raise
            if note is not None:
                note(f"no error map: the zone polygons are NYC taxi zones ({exc.problem})")
            return written
        first = int((test_start - ds.start) / step)
        last = int((test_end - ds.start) / step) - forecaster.output_len + 1
        pred, truth = test_forecasts(forecaster, ds, first, last)
        errors = zone_errors(pred, truth)
        title = (f"{b.model}: test MAE per zone, {test_start.date()} … {test_end.date()} "
                 f"({len(pred)} windows)")
        written.append(error_map(forecaster.zones, errors, shp, out_dir / "error_map.png", title))
    return written
