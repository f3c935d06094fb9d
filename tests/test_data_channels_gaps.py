"""`data build tensor` with separate inflow/outflow files and with calendar gaps (synthetic data:
these are mechanics of reading and windowing)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from flowdistill.data.dataset import FlowDataset
from flowdistill.data.errors import DataError
from flowdistill.data.tensors import load_channel_files, load_tensor
from flowdistill.data.windows import WindowConfig, Windows

ZONES = ["4", "12", "13"]


def run_cli(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    from flowdistill.cli import app
    from flowdistill.cli.common import run_guarded

    monkeypatch.setattr(sys, "argv", ["flowdistill", *args])
    code = run_guarded(app)
    cap = capsys.readouterr()
    return code, cap.out, " ".join(cap.err.split())


def _weekday_feed(tmp_path: Path, weeks: int = 4) -> tuple[pd.DatetimeIndex, np.ndarray, np.ndarray]:
    """Two CSVs (timestamp column, zone-id header) holding weekdays only, as many feeds do."""
    rng = np.random.default_rng(0)
    clock = pd.date_range("2021-03-01", periods=weeks * 7 * 48, freq="30min")
    days = clock[clock.day_of_week < 5]
    a = rng.poisson(10, (len(days), 3))
    b = rng.poisson(7, (len(days), 3))
    for name, arr in (("in", a), ("out", b)):
        frame = pd.DataFrame(arr, index=days.strftime("%Y-%m-%d %H:%M"), columns=ZONES)
        frame.rename_axis("timestamp").to_csv(tmp_path / f"{name}.csv")
    return days, a, b


def test_separate_channel_files_equal_the_stacked_tensor(tmp_path):
    rng = np.random.default_rng(1)
    a, b = rng.poisson(5, (96, 4)), rng.poisson(3, (96, 4))
    np.save(tmp_path / "in.npy", a)
    np.save(tmp_path / "out.npy", b)
    np.save(tmp_path / "both.npy", np.stack([a, b], -1))
    kw = dict(start="2022-01-01", interval_minutes=30)
    split = load_channel_files(tmp_path / "in.npy", tmp_path / "out.npy", **kw)
    stacked = load_tensor(tmp_path / "both.npy", layout="TNC", **kw)
    assert np.array_equal(split.flows, stacked.flows)
    assert split.extra["inflow"].endswith("in.npy") and split.extra["outflow"].endswith("out.npy")
    # NTC: zones first
    np.save(tmp_path / "in_t.npy", a.T)
    np.save(tmp_path / "out_t.npy", b.T)
    ntc = load_channel_files(tmp_path / "in_t.npy", tmp_path / "out_t.npy", layout="NTC", **kw)
    assert np.array_equal(ntc.flows, stacked.flows)


def test_channel_csvs_carry_zone_ids_and_timestamps(tmp_path):
    days, a, b = _weekday_feed(tmp_path, weeks=1)
    week = days[days < "2021-03-06"]
    ds = load_channel_files(tmp_path / "in.csv", tmp_path / "out.csv")
    assert ds.region_ids == ZONES
    assert ds.start == pd.Timestamp("2021-03-01") and ds.interval_minutes == 30
    assert ds.num_slots == len(week)
    assert np.array_equal(ds.flows[:, :, 0], a) and np.array_equal(ds.flows[:, :, 1], b)


def test_channel_files_that_disagree_are_refused(tmp_path):
    np.save(tmp_path / "in.npy", np.ones((96, 4)))
    np.save(tmp_path / "out.npy", np.ones((96, 5)))
    with pytest.raises(DataError, match=r"outflow has shape \(96, 5\) but inflow has \(96, 4\)"):
        load_channel_files(tmp_path / "in.npy", tmp_path / "out.npy", start="2022-01-01",
                           interval_minutes=30)
    pd.DataFrame({"timestamp": ["2022-01-01 00:00", "2022-01-01 00:30"], "4": [1, 2],
                  "12": [1, 2]}).to_csv(tmp_path / "in.csv", index=False)
    pd.DataFrame({"timestamp": ["2022-01-01 00:00", "2022-01-01 00:30"], "4": [1, 2],
                  "13": [1, 2]}).to_csv(tmp_path / "out.csv", index=False)
    with pytest.raises(DataError, match="zone 1 is '13' here but '12'"):
        load_channel_files(tmp_path / "in.csv", tmp_path / "out.csv")
    pd.DataFrame({"timestamp": ["2022-01-01 00:00", "2022-01-01 00:30"], "4": [1, None],
                  "12": [1, 2]}).to_csv(tmp_path / "out.csv", index=False)
    with pytest.raises(DataError, match="NaN, blanks or infinity"):
        load_channel_files(tmp_path / "in.csv", tmp_path / "out.csv")


def test_weekday_only_feed_needs_its_gaps_declared(tmp_path):
    _weekday_feed(tmp_path)
    with pytest.raises(DataError, match="declare them with --missing-days"):
        load_channel_files(tmp_path / "in.csv", tmp_path / "out.csv")
    auto = load_channel_files(tmp_path / "in.csv", tmp_path / "out.csv", missing_days="auto")
    named = load_channel_files(tmp_path / "in.csv", tmp_path / "out.csv", missing_days="weekends")
    assert auto.gaps() == named.gaps() == ["2021-03-06..2021-03-07", "2021-03-13..2021-03-14",
                                           "2021-03-20..2021-03-21"]
    assert auto.num_slots == 26 * 48  # Monday 1 … Friday 26 March on one regular clock
    with pytest.raises(DataError, match="skip 2021-03-13, which --missing-days does not declare"):
        load_channel_files(tmp_path / "in.csv", tmp_path / "out.csv",
                           missing_days="2021-03-06..2021-03-07,2021-03-14,2021-03-20,2021-03-21")
    with pytest.raises(DataError, match="2021-03-08 is declared missing but the data has rows"):
        load_channel_files(tmp_path / "in.csv", tmp_path / "out.csv",
                           missing_days="weekends,2021-03-08")


def test_declared_days_without_timestamps_are_placed_on_the_clock(tmp_path):
    days, a, b = _weekday_feed(tmp_path)
    np.save(tmp_path / "in.npy", a)
    np.save(tmp_path / "out.npy", b)
    ds = load_channel_files(tmp_path / "in.npy", tmp_path / "out.npy", start="2021-03-01",
                            interval_minutes=30, missing_days="weekends")
    ref = load_channel_files(tmp_path / "in.csv", tmp_path / "out.csv", missing_days="auto")
    assert np.array_equal(ds.flows, ref.flows) and ds.gaps() == ref.gaps()


def test_windows_skip_gaps_and_the_scaler_ignores_them(tmp_path):
    _weekday_feed(tmp_path)
    ds = load_channel_files(tmp_path / "in.csv", tmp_path / "out.csv", missing_days="auto")
    w = Windows(ds, WindowConfig(train_ratio=0.5, val_ratio=0.2, test_ratio=0.2))
    missing = ds.missing_mask()
    for split in ("train", "val", "test"):
        ids = w.ids(split)
        assert len(ids)
        spans = ids[:, None] + np.arange(-12, 12)
        assert not missing[spans].any(), split
    assert w.skipped_for_gaps > 0 and w.describe()["skipped_for_gaps"] == w.skipped_for_gaps
    train = ds.flows[: w.bounds.train_end][~missing[: w.bounds.train_end]]
    assert np.allclose(w.scaler.mean, train.reshape(-1, 2).mean(0))
    # a series without gaps is windowed exactly as before
    plain = FlowDataset(**{**{k: getattr(ds, k) for k in ds.__dataclass_fields__}, "extra": {}})
    pw = Windows(plain, WindowConfig(train_ratio=0.5, val_ratio=0.2, test_ratio=0.2))
    assert pw.skipped_for_gaps == 0 and "skipped_for_gaps" not in pw.describe()
    assert len(pw.all_ids) == plain.num_slots - 23


def test_cli_build_and_info_report_the_gaps(tmp_path, monkeypatch, capsys):
    _weekday_feed(tmp_path)
    out = tmp_path / "city.npz"
    code, _, err = run_cli(monkeypatch, capsys, "data", "build", "tensor", "--inflow",
                           str(tmp_path / "in.csv"), "--outflow", str(tmp_path / "out.csv"),
                           "--out", str(out))
    assert code == 2 and "--missing-days" in err
    code, _, err = run_cli(monkeypatch, capsys, "data", "build", "tensor", "--inflow",
                           str(tmp_path / "in.csv"), "--outflow", str(tmp_path / "out.csv"),
                           "--missing-days", "weekends", "--out", str(out))
    assert code == 0, err
    code, stdout, _ = run_cli(monkeypatch, capsys, "data", "info", str(out), "--json")
    info = json.loads(stdout)
    assert info["missing_days"] == 6 and info["missing_slots"] == 6 * 48
    assert info["gaps"][0] == "2021-03-06..2021-03-07"
    code, _, err = run_cli(monkeypatch, capsys, "data", "build", "tensor", "--inflow",
                           str(tmp_path / "in.csv"), "--out", str(tmp_path / "x.npz"))
    assert code == 2 and "give both files" in err
    code, _, err = run_cli(monkeypatch, capsys, "data", "build", "tensor", str(tmp_path / "a.npy"),
                           "--out", str(tmp_path / "x.npz"))
    assert code == 2 and "state the tensor's layout" in err
