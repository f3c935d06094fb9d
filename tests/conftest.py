"""Shared fixtures: the real shared data folder and a small synthetic dataset for mechanics."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flowdistill.data.dataset import FlowDataset

SHARED_DATA = (Path(__file__).resolve().parents[1] / ".." / "shared" / "data").resolve()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED_DATA / "nyc-taxi-manhattan").exists():
        pytest.fail(f"real data not found at {SHARED_DATA} (tests expect ../shared/data)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def nyc(shared_data):
    from flowdistill.data.sources import load_dataset

    return load_dataset("nyc-taxi-manhattan", data_dir=shared_data)


def make_synthetic(days: int = 20, regions: int = 6, seed: int = 0) -> FlowDataset:
    """Daily-periodic counts with noise: only for testing mechanics, never for accuracy."""
    rng = np.random.default_rng(seed)
    t = np.arange(days * 48)
    base = 20 + 15 * np.sin(2 * np.pi * t / 48)[:, None, None]
    flows = np.clip(base + rng.poisson(5, size=(len(t), regions, 2)), 0, None).round()
    adj = np.zeros((regions, regions), dtype=np.float32)
    for i in range(regions - 1):
        adj[i, i + 1] = adj[i + 1, i] = 1
    return FlowDataset(
        name="synthetic",
        flows=flows.astype(np.float32),
        start=pd.Timestamp("2021-03-01"),
        interval_minutes=30,
        region_ids=[str(i) for i in range(regions)],
        region_names=[f"zone {i}" for i in range(regions)],
        adjacency=adj,
        centroids=np.stack([np.arange(regions), np.zeros(regions)], axis=1).astype(float),
    )


@pytest.fixture()
def synthetic() -> FlowDataset:
    return make_synthetic()


@pytest.fixture(scope="session", autouse=True)
def _one_thread():
    """Tiny test models run faster on one thread (and do not fight other processes for cores)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _no_network_env(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("TQDM_DISABLE", "1")


def run_cli_wide(monkeypatch, capsys, *args: str) -> tuple[int, str]:
    """The real entry path in-process, on a console wide enough that no message wraps: exit code
    and everything printed, on one line."""
    from rich.console import Console

    from flowdistill.cli import app, common
    from flowdistill.cli.common import run_guarded

    monkeypatch.setattr(common, "console", Console(stderr=True, width=2000))
    monkeypatch.setattr(sys, "argv", ["flowdistill", *args])
    code = run_guarded(app)
    cap = capsys.readouterr()
    return code, " ".join((cap.out + " " + cap.err).split())
