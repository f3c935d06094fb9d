"""What a run folder must hold for its model to be used again without the training data.

Training writes ``OUT/model.json`` beside ``OUT/model.pt``: the model's name and resolved options,
the facts it was built for (regions, window lengths, channels, slots per day, graph), the scaler
fitted on the training slots and the dataset's clock and zone ids. :func:`load_bundle` reads it back
and rebuilds the network with its weights, so `predict`, `export` and `serve` need RUN_DIR alone.

Runs made before this file existed are still usable: :func:`load_bundle` then rebuilds the same facts
from ``metrics.json`` by reloading the dataset named in its config (which must still be reachable).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from flowdistill.data.errors import DataError
from flowdistill.data.windows import StandardScaler, WindowConfig, Windows
from flowdistill.models.base import ModelContext, build_model

BUNDLE_FILE = "model.json"
WEIGHTS_FILE = "model.pt"
GRAPH_FILE = "model-graph.npy"  # the N×N adjacency some models are built with
FORMAT = "flowdistill-model"
VERSION = 1


@dataclass
class RunBundle:
    """A trained model's recipe: everything but the weights, plus where the weights are."""

    model: str
    options: dict[str, Any]
    context: ModelContext
    scaler: StandardScaler
    region_ids: list[str]
    region_names: list[str]
    channels: tuple[str, ...]
    interval_minutes: int
    dataset: dict[str, Any] = field(default_factory=dict)  # name, city, start, end, spec
    metrics: dict[str, Any] = field(default_factory=dict)  # test/val scores from metrics.json
    run_dir: Path | None = None

    @property
    def input_len(self) -> int:
        return self.context.input_len

    @property
    def output_len(self) -> int:
        return self.context.output_len

    def build(self, device: str = "cpu") -> nn.Module:
        """The network with its trained weights, in eval mode."""
        model = build_model(self.model, self.context, self.options)
        if self.run_dir is not None:
            weights = self.run_dir / WEIGHTS_FILE
            if not weights.exists():
                raise DataError(weights, "no trained weights in this run folder (model.pt missing)")
            state = torch.load(weights, map_location=device, weights_only=True)
            missing, unexpected = model.load_state_dict(state, strict=False)
            if unexpected or [k for k in missing if "backbone" not in k]:
                raise DataError(
                    weights,
                    f"weights do not fit a {self.model} model (missing {missing[:3]}, "
                    f"unexpected {unexpected[:3]})",
                )
        return model.to(device).eval()

    def to_dict(self) -> dict[str, Any]:
        ctx = self.context
        return {
            "format": FORMAT,
            "version": VERSION,
            "model": self.model,
            "options": self.options,
            "context": {
                "num_regions": ctx.num_regions,
                "input_len": ctx.input_len,
                "output_len": ctx.output_len,
                "num_channels": ctx.num_channels,
                "slots_per_day": ctx.slots_per_day,
                "graph": None if ctx.adjacency is None else GRAPH_FILE,
            },
            "scaler": self.scaler.to_dict(),
            "region_ids": list(self.region_ids),
            "region_names": list(self.region_names),
            "channels": list(self.channels),
            "interval_minutes": self.interval_minutes,
            "dataset": self.dataset,
        }


def bundle_from_windows(
    model: str, options: dict[str, Any], windows: Windows, dataset_spec: dict[str, Any] | None = None
) -> RunBundle:
    """The recipe of a model trained on ``windows`` (called by training, written beside model.pt)."""
    from flowdistill.models.base import model_config

    ds = windows.dataset
    return RunBundle(
        model=model,
        options=model_config(model, options),
        context=ModelContext.from_windows(windows),
        scaler=windows.scaler,
        region_ids=[str(r) for r in ds.region_ids],
        region_names=[str(r) for r in ds.region_names],
        channels=tuple(ds.channels),
        interval_minutes=int(ds.interval_minutes),
        dataset={
            "name": ds.name,
            "city": ds.city,
            "start": ds.start.isoformat(),
            "end": ds.end.isoformat(),
            "test_start": pd.Timestamp(ds.timestamps[windows.bounds.test_start]).isoformat(),
            "spec": dict(dataset_spec or {}),
            **({"internal_only": ds.extra["internal_only"]} if "internal_only" in ds.extra else {}),
        },
    )


def save_bundle(out_dir: str | os.PathLike[str], bundle: RunBundle) -> Path:
    """Write ``OUT/model.json`` atomically."""
    from flowdistill.engine.trainer import write_json

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if bundle.context.adjacency is not None:
        tmp = out_dir / f".{GRAPH_FILE}.tmp"
        with open(tmp, "wb") as fh:
            np.save(fh, np.asarray(bundle.context.adjacency, dtype=np.float32))
        os.replace(tmp, out_dir / GRAPH_FILE)
    path = out_dir / BUNDLE_FILE
    write_json(path, bundle.to_dict())
    return path


def write_run_bundle(
    out_dir: str | os.PathLike[str], model: str, options: dict[str, Any], windows: Windows,
    dataset_spec: dict[str, Any] | None = None,
) -> Path:
    """One call for training code: describe the model trained on ``windows`` in OUT/model.json."""
    return save_bundle(out_dir, bundle_from_windows(model, options, windows, dataset_spec))


def load_bundle(run_dir: str | os.PathLike[str]) -> RunBundle:
    """The recipe of the model in ``run_dir`` (model.json, else rebuilt from metrics.json)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise DataError(run_dir, "run folder not found")
    metrics = _read_json(run_dir / "metrics.json") if (run_dir / "metrics.json").exists() else {}
    card = run_dir / BUNDLE_FILE
    if card.exists():
        bundle = _from_dict(_read_json(card), card)
    elif metrics:
        bundle = _from_metrics(metrics, run_dir / "metrics.json")
    else:
        raise DataError(run_dir, "not a run folder: neither model.json nor metrics.json is there")
    bundle.run_dir = run_dir
    bundle.metrics = {k: metrics[k] for k in ("test", "val", "params", "fit") if k in metrics}
    return bundle


def _read_json(path: Path) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(path, f"cannot read: {exc}") from exc


def _from_dict(d: dict[str, Any], where: Path) -> RunBundle:
    if d.get("format") != FORMAT:
        raise DataError(where, "not a FlowDistill model description")
    c = d["context"]
    adj = None
    if c.get("graph"):
        graph = where.parent / c["graph"]
        if not graph.exists():
            raise DataError(graph, "the model's graph file is missing from the run folder")
        adj = np.load(graph, allow_pickle=False)
    return RunBundle(
        model=d["model"],
        options=dict(d.get("options") or {}),
        context=ModelContext(
            num_regions=int(c["num_regions"]),
            input_len=int(c["input_len"]),
            output_len=int(c["output_len"]),
            num_channels=int(c["num_channels"]),
            slots_per_day=int(c["slots_per_day"]),
            adjacency=None if adj is None else np.asarray(adj, dtype=np.float32),
        ),
        scaler=StandardScaler(np.asarray(d["scaler"]["mean"]), np.asarray(d["scaler"]["std"])),
        region_ids=[str(r) for r in d["region_ids"]],
        region_names=[str(r) for r in d["region_names"]],
        channels=tuple(d["channels"]),
        interval_minutes=int(d["interval_minutes"]),
        dataset=dict(d.get("dataset") or {}),
    )


def _from_metrics(metrics: dict[str, Any], where: Path) -> RunBundle:
    """An older run: rebuild the scaler and context from the dataset its config names."""
    from flowdistill.data.sources import load_dataset

    try:
        run = metrics["config"]["run"]
        options = metrics["config"].get("model") or {}
    except KeyError as exc:
        raise DataError(where, f"has no config.{exc.args[0]}: cannot rebuild the model") from exc
    ds = load_dataset(run["dataset"], run.get("data_dir"), run.get("start"), run.get("end"))
    windows = Windows(ds, WindowConfig(train_ratio=float(run.get("train_ratio", 0.1))))
    spec = {k: run.get(k) for k in ("dataset", "data_dir", "start", "end", "train_ratio")}
    return bundle_from_windows(run["model"], options, windows, spec)
