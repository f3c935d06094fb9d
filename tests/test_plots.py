"""`flowdistill plot` on a tiny run on real NYC data: three readable PNGs, and clear refusals."""

from __future__ import annotations

from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest

from conftest import make_synthetic, run_cli_wide
from flowdistill.engine.trainer import TrainConfig
from flowdistill.experiments.runs import RunSpec, run

run_cli = run_cli_wide


@pytest.fixture(scope="module")
def runs(tmp_path_factory, shared_data) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("plot-runs")
    common = dict(dataset="nyc-taxi-manhattan", data_dir=str(shared_data), start="2019-01-01",
                  end="2019-01-31", train_ratio=0.5)
    tc = TrainConfig(max_epochs=2, limit_train_batches=2, limit_val_batches=1, progress=False)
    run(RunSpec(model="ha", train=tc, **common), root / "ha")
    run(RunSpec(model="stid", train=tc, model_options={"embed_dim": 16}, **common), root / "stid")
    syn = make_synthetic(days=20, regions=10).save(root / "syn.npz")
    run(RunSpec(model="stid", dataset=str(syn), train_ratio=0.5, train=tc), root / "syn")
    return {"ha": root / "ha", "stid": root / "stid", "syn": root / "syn"}


def _png(path: Path) -> np.ndarray:
    assert path.read_bytes()[:4] == b"\x89PNG"
    img = mpimg.imread(path)
    assert img.shape[0] > 300 and img.shape[1] > 500
    assert img[..., :3].std() > 0.05  # not a blank canvas
    return img


def test_plot_writes_curves_forecast_and_map(runs, shared_data, tmp_path, monkeypatch, capsys):
    code, msg = run_cli(monkeypatch, capsys, "plot", "--run", str(runs["stid"]), "--zones",
                        "161,237", "--week", "2019-01-21", "--data-dir", str(shared_data),
                        "--out", str(tmp_path))
    assert code == 0, msg
    for name in ("learning_curves", "forecast_vs_truth", "error_map"):
        _png(tmp_path / f"{name}.png")
        assert f"{name}.png" in msg


def test_plot_defaults_next_to_the_run_and_a_model_without_epochs(runs, monkeypatch, capsys):
    code, msg = run_cli(monkeypatch, capsys, "plot", "--run", str(runs["ha"]), "--what", "curves")
    assert code == 0, msg
    _png(runs["ha"] / "plots" / "learning_curves.png")


@pytest.mark.parametrize(
    "args, problem",
    [
        (["--zones", "161,999"], "unknown zones ['999']"),
        (["--what", "curves,histogram"], "unknown plot ['histogram']"),
        (["--week", "2024-01-01"], "outside the data"),
        (["--horizon", "13"], "must be between 1 and 12"),
    ],
)
def test_plot_refuses_bad_choices(runs, shared_data, tmp_path, monkeypatch, capsys, args, problem):
    code, msg = run_cli(monkeypatch, capsys, "plot", "--run", str(runs["stid"]), "--what",
                        "forecast", "--data-dir", str(shared_data), "--out", str(tmp_path), *args)
    if "--what" in args:
        code, msg = run_cli(monkeypatch, capsys, "plot", "--run", str(runs["stid"]), *args)
    assert code == 2 and problem in msg, msg


def test_plot_a_run_in_progress_and_a_city_without_taxi_zones(runs, tmp_path, monkeypatch, capsys):
    import shutil

    running = tmp_path / "running"
    shutil.copytree(runs["stid"], running)
    (running / "metrics.json").unlink()  # what a run still training has: its last checkpoint
    code, msg = run_cli(monkeypatch, capsys, "plot", "--run", str(running), "--what", "curves")
    assert code == 0, msg
    _png(running / "plots" / "learning_curves.png")
    code, msg = run_cli(monkeypatch, capsys, "plot", "--run", str(runs["syn"]), "--out",
                        str(tmp_path / "syn"))
    assert code == 0, msg
    assert "no error map" in msg and not (tmp_path / "syn" / "error_map.png").exists()
    _png(tmp_path / "syn" / "forecast_vs_truth.png")
    code, msg = run_cli(monkeypatch, capsys, "plot", "--run", str(runs["syn"]), "--what", "map",
                        "--out", str(tmp_path / "syn"))
    assert code == 2 and "zone ids not in the zone table" in msg
