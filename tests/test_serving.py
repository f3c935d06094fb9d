"""A trained run put to use: predict (dataset, dataset file, trip records), ONNX export, HTTP service.

Every registered model is trained for one batch on a small synthetic series (mechanics); the
student is also distilled for two batches on one real month of NYC taxi data, and that run is what
the trip-record, export and server tests use.
"""

from __future__ import annotations

import csv
import json
import socket
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import make_synthetic, run_cli_wide
from flowdistill.data.dataset import FlowDataset
from flowdistill.data.errors import DataError
from flowdistill.engine.trainer import TrainConfig
from flowdistill.experiments.runs import RunSpec, run
from flowdistill.models.base import available_models
from flowdistill.serving import Forecaster

TINY = TrainConfig(max_epochs=1, limit_train_batches=1, limit_val_batches=1, batch_size=16,
                   progress=False)
MODELS = sorted(available_models())


run_cli = run_cli_wide


@pytest.fixture(scope="module")
def syn(tmp_path_factory) -> tuple[FlowDataset, Path, dict[str, Path]]:
    """A synthetic dataset file and one tiny run per registered model."""
    root = tmp_path_factory.mktemp("syn-runs")
    ds = make_synthetic(days=20, regions=10)
    path = ds.save(root / "syn.npz")
    teacher = root / "teacher.npz"
    runs = {"ha": root / "ha"}
    run(RunSpec(model="ha", dataset=str(path), train_ratio=0.5, train=TINY,
                save_teacher=str(teacher)), runs["ha"])
    for m in MODELS:
        if m != "ha":
            runs[m] = root / m
            run(RunSpec(model=m, dataset=str(path), train_ratio=0.5, train=TINY,
                        teacher=str(teacher)), runs[m])
    return ds, path, runs


@pytest.fixture(scope="module")
def nyc_run(tmp_path_factory, shared_data) -> Path:
    """The FlowDistill student on January 2019 of the real data (HA teacher, 2 batches)."""
    root = tmp_path_factory.mktemp("nyc-run")
    common = dict(dataset="nyc-taxi-manhattan", data_dir=str(shared_data), start="2019-01-01",
                  end="2019-01-31", train_ratio=0.5)
    run(RunSpec(model="ha", train=TINY, save_teacher=str(root / "t.npz"), **common), root / "ha")
    tc = TrainConfig(max_epochs=1, limit_train_batches=2, limit_val_batches=1, progress=False)
    run(RunSpec(model="flowdistill", teacher=str(root / "t.npz"), train=tc,
                model_options={"embed_dim": 16, "bottleneck": 32}, **common), root / "student")
    return root / "student"


def _rows(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


# ------------------------------------------------------------------------------ predict
@pytest.mark.parametrize("model", MODELS)
def test_every_model_predicts_from_its_run_folder_alone(syn, model, tmp_path, monkeypatch, capsys):
    ds, path, runs = syn
    out = tmp_path / "f.csv"
    code, msg = run_cli(monkeypatch, capsys, "predict", "--run", str(runs[model]), "--data",
                        str(path), "--at", "2021-03-15 08:00", "--out", str(out))
    assert code == 0, msg
    rows = _rows(out)
    assert list(rows[0]) == ["timestamp", "zone", "inflow", "outflow"]
    assert len(rows) == 12 * ds.num_regions
    assert rows[0]["timestamp"] == "2021-03-15T08:00:00"
    assert rows[-1]["timestamp"] == "2021-03-15T13:30:00"
    assert [r["zone"] for r in rows[: ds.num_regions]] == ds.region_ids
    assert all(float(r["inflow"]) >= 0 and float(r["outflow"]) >= 0 for r in rows)
    # the same numbers as the trained network on the same 12 slots (scaler and calendar rebuilt)
    f = Forecaster.from_run(runs[model])
    t = int((pd.Timestamp("2021-03-15 08:00") - ds.start) / pd.Timedelta(minutes=30))
    direct = f.forecast_raw(ds.flows[t - 12 : t], pd.Timestamp("2021-03-15 08:00"))[0]
    assert np.allclose([float(r["inflow"]) for r in rows[: ds.num_regions]], direct[0, :, 0],
                       atol=1e-3)


@pytest.mark.parametrize("model", MODELS)
def test_every_model_exports_to_onnx_matching_torch(syn, model, tmp_path, monkeypatch, capsys):
    _, path, runs = syn
    out = tmp_path / "m.onnx"
    code, msg = run_cli(monkeypatch, capsys, "export", "--run", str(runs[model]), "--data",
                        str(path), "--format", "onnx", "--out", str(out), "--windows", "16")
    assert code == 0, msg
    diff = float(msg.split("max abs diff ")[1].split()[0])
    assert diff <= 1e-4 and "OK" in msg
    import onnx

    meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
    assert meta["flowdistill.model"] == model
    assert json.loads(meta["flowdistill.zones"]) == [str(i) for i in range(10)]


def test_predict_json_defaults_to_the_end_of_the_data(syn, tmp_path, monkeypatch, capsys):
    ds, path, runs = syn
    out = tmp_path / "f.json"
    code, msg = run_cli(monkeypatch, capsys, "predict", "--run", str(runs["stid"]), "--data",
                        str(path), "--out", str(out))
    assert code == 0, msg
    doc = json.loads(out.read_text())
    first = ds.end + pd.Timedelta(minutes=30)
    assert doc["model"] == "stid" and doc["first_slot"] == first.isoformat()
    assert len(doc["forecast"]) == 12 * ds.num_regions
    assert set(doc["forecast"][0]) == {"timestamp", "zone", "inflow", "outflow"}


@pytest.mark.parametrize(
    "at, problem",
    [
        ("2021-05-01 00:00", "is outside the data: it ends at"),
        ("2021-03-01 02:00", "the earliest forecast starts at 2021-03-01 06:00:00"),
        ("2021-03-10 08:10", "is not a slot start"),
        ("yesterday-ish", "cannot read timestamp"),
    ],
)
def test_predict_bad_timestamp_is_one_line(syn, tmp_path, monkeypatch, capsys, at, problem):
    _, path, runs = syn
    code, msg = run_cli(monkeypatch, capsys, "predict", "--run", str(runs["stid"]), "--data",
                        str(path), "--at", at, "--out", str(tmp_path / "f.csv"))
    assert code == 2 and problem in msg and "Traceback" not in msg
    assert not (tmp_path / "f.csv").exists()


def test_predict_wrong_zones_and_missing_slots(syn, tmp_path, monkeypatch, capsys):
    ds, _, runs = syn
    other = ds._replace(region_ids=[str(i) for i in range(100, 110)]).save(tmp_path / "other.npz")
    code, msg = run_cli(monkeypatch, capsys, "predict", "--run", str(runs["stid"]), "--data",
                        str(other), "--out", str(tmp_path / "f.csv"))
    assert code == 2 and "wrong zones" in msg and "lacks 10 of the model's zones" in msg
    gap = ds._replace(extra={"missing_days": ["2021-03-10"]}).save(tmp_path / "gap.npz")
    code, msg = run_cli(monkeypatch, capsys, "predict", "--run", str(runs["stid"]), "--data",
                        str(gap), "--at", "2021-03-11 04:00", "--out", str(tmp_path / "f.csv"))
    assert code == 2 and "missing slots" in msg and "2021-03-10 22:00" in msg
    # zones in another order are put back in the model's order, not refused
    f = Forecaster.from_run(runs["stid"])
    order = list(range(9, -1, -1))
    flipped = ds._replace(flows=ds.flows[:, order], region_ids=[ds.region_ids[i] for i in order],
                          region_names=[ds.region_names[i] for i in order],
                          adjacency=ds.adjacency[np.ix_(order, order)], centroids=None)
    a = f.forecast_dataset(ds, "2021-03-15 08:00").values
    assert np.allclose(f.forecast_dataset(flipped, "2021-03-15 08:00").values, a)


@pytest.mark.parametrize("model", ["flowdistill", "stid", "ha"])
def test_forecaster_matches_the_training_pipeline(syn, model):
    """Scaler, calendar and zone order rebuilt from the run folder give the engine's forecasts."""
    from flowdistill.data.windows import WindowConfig, Windows
    from flowdistill.engine.trainer import Trainer

    ds, _, runs = syn
    f = Forecaster.from_run(runs[model])
    windows = Windows(ds, WindowConfig(train_ratio=0.5))
    ids = windows.ids("test")[::7]
    engine = Trainer().predict(f.model, windows, ids)
    ours = f.forecast_raw(windows.inputs(ids, scaled=False), ds.timestamps[ids])
    assert np.allclose(ours, np.clip(engine, 0, None), atol=1e-3)


def test_old_run_without_model_json_is_rebuilt_from_metrics(syn, tmp_path):
    import shutil

    ds, _, runs = syn
    copy = tmp_path / "old"
    shutil.copytree(runs["flowdistill"], copy)
    (copy / "model.json").unlink()
    (copy / "model-graph.npy").unlink()
    a = Forecaster.from_run(runs["flowdistill"]).forecast_dataset(ds).values
    b = Forecaster.from_run(copy).forecast_dataset(ds).values
    assert np.allclose(a, b, atol=1e-5)
    with pytest.raises(DataError, match="not a run folder"):
        Forecaster.from_run(tmp_path)


# ------------------------------------------------------------------------------ trip records
def _trips(path: Path, day: str, hours: int, skip_hour: int | None = None) -> Path:
    """Yellow-taxi records between Manhattan zones (mechanics: counts are synthetic)."""
    rng = np.random.default_rng(0)
    zones = [161, 237, 236, 186, 162, 230, 48, 142]
    start = pd.Timestamp(day)
    rows = []
    for minute in range(0, hours * 60, 2):
        if skip_hour is not None and minute // 60 == skip_hour:
            continue
        t = start + pd.Timedelta(minutes=minute)
        pu, do = rng.choice(zones, 2)
        rows.append((t, t + pd.Timedelta(minutes=int(rng.integers(3, 20))), int(pu), int(do)))
    frame = pd.DataFrame(rows, columns=["tpep_pickup_datetime", "tpep_dropoff_datetime",
                                        "PULocationID", "DOLocationID"])
    frame.to_parquet(path)
    return path


def test_predict_from_tlc_trip_records(nyc_run, shared_data, tmp_path, monkeypatch, capsys):
    trips = _trips(tmp_path / "yellow_tripdata_2024-05.parquet", "2024-05-06", hours=9)
    out = tmp_path / "f.csv"
    code, msg = run_cli(monkeypatch, capsys, "predict", "--run", str(nyc_run), "--data",
                        str(trips), "--data-dir", str(shared_data), "--out", str(out))
    assert code == 0, msg
    rows = _rows(out)
    assert len(rows) == 12 * 69
    # the records stop in the 08:30 slot (drop-offs run a few minutes later): the forecast follows it
    assert rows[0]["timestamp"] in ("2024-05-06T09:00:00", "2024-05-06T09:30:00")
    assert {r["zone"] for r in rows} >= {"161", "237"}
    holed = _trips(tmp_path / "holed.parquet", "2024-05-06", hours=9, skip_hour=6)
    code, msg = run_cli(monkeypatch, capsys, "predict", "--run", str(nyc_run), "--data",
                        str(holed), "--data-dir", str(shared_data), "--at", "2024-05-06 08:00",
                        "--out", str(out))
    assert code == 2 and "missing slots: no trip recorded" in msg


def test_export_student_on_real_windows(nyc_run, tmp_path, monkeypatch, capsys):
    out = tmp_path / "student.onnx"
    code, msg = run_cli(monkeypatch, capsys, "export", "--run", str(nyc_run), "--out", str(out))
    assert code == 0, msg
    assert "on 64 real windows" in msg
    assert float(msg.split("max abs diff ")[1].split()[0]) <= 1e-4
    code, msg = run_cli(monkeypatch, capsys, "export", "--run", str(nyc_run), "--format", "tflite",
                        "--out", str(out))
    assert code == 2 and "only 'onnx'" in msg


# ------------------------------------------------------------------------------ HTTP service
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(nyc_run, shared_data):
    """`create_app` under uvicorn on a free loopback port, in a thread; stopped after the tests."""
    import uvicorn

    from flowdistill.data.sources import load_dataset
    from flowdistill.serving.api import create_app

    forecaster = Forecaster.from_run(nyc_run)
    data = load_dataset("nyc-taxi-manhattan", shared_data, "2019-01-01", "2019-01-31")
    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(create_app(forecaster, data), host="127.0.0.1", port=port,
                                        log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    for _ in range(200):
        if srv.started:
            break
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", forecaster, data
    srv.should_exit = True
    thread.join(timeout=10)


def _call(url: str, body: object | None = None, raw: bytes | None = None) -> tuple[int, dict]:
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_server_health_and_model(server):
    base, forecaster, _ = server
    assert _call(base + "/health") == (200, {"status": "ok", "model": "flowdistill"})
    code, info = _call(base + "/model")
    assert code == 200
    assert info["model"] == "flowdistill" and info["dataset"] == "nyc-taxi-manhattan"
    assert len(info["zones"]) == 69 and info["interval_minutes"] == 30
    assert set(info["metrics"]["test"]) == {"mae", "rmse", "mape"}
    assert info["served_data"]["end"] == "2019-01-31T23:30:00"


def test_server_forecasts_from_a_timestamp_and_from_flows(server):
    base, forecaster, data = server
    code, by_time = _call(base + "/forecast", {"at": "2019-01-20T08:00:00", "zones": ["161", "237"]})
    assert code == 200, by_time
    assert by_time["timestamps"][0] == "2019-01-20T08:00:00" and len(by_time["timestamps"]) == 12
    assert [z["zone"] for z in by_time["forecast"]] == ["161", "237"]
    assert len(by_time["forecast"][0]["values"]["inflow"]) == 12
    t = int((pd.Timestamp("2019-01-20 08:00") - data.start) / pd.Timedelta(minutes=30))
    flows = data.flows[t - 12 : t].tolist()
    code, by_flows = _call(base + "/forecast", {"at": "2019-01-20T08:00:00", "flows": flows})
    assert code == 200, by_flows
    z161 = next(z for z in by_flows["forecast"] if z["zone"] == "161")
    assert z161 == by_time["forecast"][0]


@pytest.mark.parametrize(
    "body, problem",
    [
        ({"at": "2019-01-20T08:00:00", "flows": [[[1.0, 2.0]]]}, "flows must be 12 slots × 69 zones"),
        ({"at": "2019-01-20T08:00:00", "flows": [[[1.0, -3.0]] * 69] * 12}, "cannot be negative"),
        ({"at": "2019-01-20T08:00:00", "zones": ["161", "999"]}, "unknown zones ['999']"),
        ({"at": "2019-03-20T08:00:00"}, "is outside the data"),
        ({"flows": [[[1.0, 2.0]] * 69] * 12}, "at: required with flows"),
        ({"at": "not a time"}, "at: Input should be a valid datetime"),
        ({"at": "2019-01-20T08:00:00", "speed": 3}, "speed: Extra inputs are not permitted"),
    ],
)
def test_server_refuses_bad_requests_with_a_clear_4xx(server, body, problem):
    base, _, _ = server
    code, reply = _call(base + "/forecast", body)
    assert 400 <= code < 500 and problem in reply["error"], reply
    assert _call(base + "/health")[0] == 200  # still serving


def test_server_refuses_nan_and_broken_json(server):
    base, _, _ = server
    flows = json.dumps([[[1.0, 2.0]] * 69] * 12).replace("2.0", "NaN", 1)
    code, reply = _call(base + "/forecast", raw=f'{{"at": "2019-01-20T08:00:00", "flows": {flows}}}'
                        .encode())
    assert code == 422 and "must be finite" in reply["error"]
    code, reply = _call(base + "/forecast", raw=b"{not json")
    assert code == 422 and "not valid JSON" in reply["error"]
    assert _call(base + "/health")[0] == 200


def test_serve_command_runs_on_loopback(syn, tmp_path):
    """The real `flowdistill serve` process: up, answers, refuses `at` without data, stops."""
    import os
    import signal
    import subprocess

    ds, _, runs = syn
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "flowdistill", "serve", "--run", str(runs["flowdistill"]),
         "--host", "127.0.0.1", "--port", str(port), "--no-data"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                if _call(base + "/health")[0] == 200:
                    break
            except OSError:
                assert proc.poll() is None, proc.stdout.read().decode()
                time.sleep(0.1)
        code, reply = _call(base + "/forecast", {"at": "2021-03-15T08:00:00",
                                                 "flows": ds.flows[:12].tolist()})
        assert code == 200 and len(reply["forecast"]) == ds.num_regions
        code, reply = _call(base + "/forecast", {"at": "2021-03-15T08:00:00"})
        assert code == 422 and "serves no data" in reply["error"]
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
