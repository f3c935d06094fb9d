"""Trip records → flows, on small record files written here in the official schemas.

Every expected count below is worked out by hand from the rows of the test.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from flowdistill.data.chicago import load_chicago_trips
from flowdistill.data.dataset import FlowDataset
from flowdistill.data.trips import NYC_COLUMNS, aggregate_trips, load_nyc_tlc

IN, OUT = 0, 1  # channel order of FlowDataset


def ts(values: list[str]) -> pd.Series:
    return pd.Series(pd.to_datetime(values))


def cell(ds: FlowDataset, when: str, zone: str, channel: int) -> float:
    t = int((pd.Timestamp(when) - ds.start) / pd.Timedelta(minutes=ds.interval_minutes))
    return float(ds.flows[t, ds.region_ids.index(zone), channel])


# ------------------------------------------------------------------------------ NYC yellow
@pytest.fixture()
def yellow(tmp_path):
    """Six yellow-taxi trips (official parquet schema: tpep_* datetimes, int64 LocationIDs)."""
    df = pd.DataFrame(
        {
            "VendorID": [1, 2, 1, 2, 1, 2],
            "tpep_pickup_datetime": ts(
                [
                    "2019-01-01 00:10",  # 4 -> 12
                    "2019-01-01 00:20",  # 4 -> 4
                    "2019-01-01 00:40",  # 264 -> 4   (unknown pickup zone)
                    "2018-12-31 23:50",  # 12 -> 4    (pickup before the period)
                    "2019-01-01 01:00",  # 132 -> 265 (Queens -> outside NYC)
                    "2019-01-01 23:55",  # 12 -> 132  (drop-off after the period)
                ]
            ),
            "tpep_dropoff_datetime": ts(
                [
                    "2019-01-01 00:35",
                    "2019-01-01 00:29",
                    "2019-01-01 00:50",
                    "2019-01-01 00:05",
                    "2019-01-01 01:40",
                    "2019-01-02 00:30",
                ]
            ),
            "passenger_count": [1.0] * 6,
            "PULocationID": np.array([4, 4, 264, 12, 132, 12], dtype=np.int64),
            "DOLocationID": np.array([12, 4, 4, 4, 265, 132], dtype=np.int64),
            "fare_amount": [5.0] * 6,
        }
    )
    path = tmp_path / "yellow_tripdata_2019-01.parquet"
    df.to_parquet(path, index=False)
    return path


def test_yellow_all_zones_hand_counts(yellow, shared_data):
    ds = load_nyc_tlc(
        [yellow], zones="all", start="2019-01-01", end="2019-01-01", data_dir=shared_data
    )
    assert ds.flows.shape == (48, 263, 2)
    assert ds.region_ids[:3] == ["1", "2", "3"] and ds.region_ids[-1] == "263"
    assert ds.start == pd.Timestamp("2019-01-01")
    # outflow: by pickup zone and pickup time
    assert cell(ds, "2019-01-01 00:00", "4", OUT) == 2
    assert cell(ds, "2019-01-01 01:00", "132", OUT) == 1
    assert cell(ds, "2019-01-01 23:30", "12", OUT) == 1
    # inflow: by drop-off zone and drop-off time
    assert cell(ds, "2019-01-01 00:00", "4", IN) == 2  # 00:29 and 00:05
    assert cell(ds, "2019-01-01 00:30", "4", IN) == 1  # 00:50
    assert cell(ds, "2019-01-01 00:30", "12", IN) == 1  # 00:35
    assert ds.flows[..., OUT].sum() == 4 and ds.flows[..., IN].sum() == 4
    d = ds.extra["dropped"]
    assert d["outflow"]["unknown_zone"] == 1 and d["outflow"]["outside_period"] == 1
    assert d["inflow"]["unknown_zone"] == 1 and d["inflow"]["outside_period"] == 1
    assert ds.extra["rows"] == 6
    # graph, centroids, POIs come with the zones
    assert ds.adjacency.shape == (263, 263)
    assert np.array_equal(ds.adjacency, ds.adjacency.T)
    assert ds.centroids is not None and ds.pois is not None and len(ds.pois) == 263


def test_borough_selection_and_internal_only(yellow, shared_data):
    ds = load_nyc_tlc(
        [yellow], zones="manhattan", start="2019-01-01", end="2019-01-01", data_dir=shared_data
    )
    assert ds.num_regions == 69
    assert "132" not in ds.region_ids  # JFK is in Queens
    assert ds.flows[..., OUT].sum() == 3  # 4, 4, 12 (23:55)
    assert ds.flows[..., IN].sum() == 4
    assert ds.extra["dropped"]["outflow"]["outside_selection"] == 1  # from 132
    inner = load_nyc_tlc(
        [yellow],
        zones="manhattan",
        start="2019-01-01",
        end="2019-01-01",
        data_dir=shared_data,
        internal_only=True,
    )
    # 12 -> 132 leaves Manhattan and 264 -> 4 starts nowhere: neither end counts any more
    assert inner.flows[..., OUT].sum() == 2
    assert inner.flows[..., IN].sum() == 3
    assert cell(inner, "2019-01-01 00:30", "4", IN) == 0


def test_interval_and_period(yellow, shared_data):
    ds = load_nyc_tlc(
        [yellow],
        zones="manhattan",
        interval_minutes=60,
        start="2019-01-01 00:00",
        end="2019-01-01 01:00",  # the start of the last slot, as in select_period
        data_dir=shared_data,
    )
    assert ds.num_slots == 2 and ds.interval_minutes == 60
    assert cell(ds, "2019-01-01 00:00", "4", IN) == 3
    assert cell(ds, "2019-01-01 00:00", "4", OUT) == 2


def test_period_inferred_from_pickups(yellow, shared_data):
    ds = load_nyc_tlc([yellow], zones="manhattan", data_dir=shared_data)
    assert ds.start == pd.Timestamp("2018-12-31")
    assert ds.num_slots == 96  # two whole days


def test_stray_dates_do_not_stretch_the_inferred_period(tmp_path, shared_data):
    rows = [f"1,2019-01-01 {h:02d}:10:00,2019-01-01 {h:02d}:20:00,4,12" for h in range(24)] * 5
    rows += ["1,2088-01-01 00:00:00,2088-01-01 00:10:00,4,12"]
    rec = tmp_path / "yellow.csv"
    rec.write_text(
        "VendorID,tpep_pickup_datetime,tpep_dropoff_datetime,PULocationID,DOLocationID\n"
        + "".join(r + "\n" for r in rows)
    )
    ds = load_nyc_tlc([rec], zones="manhattan", data_dir=shared_data)
    assert ds.start == pd.Timestamp("2019-01-01") and ds.num_slots == 48
    assert ds.flows[..., OUT].sum() == 120
    assert ds.extra["dropped"]["outflow"]["outside_period"] == 1


# ------------------------------------------------------------------------------ other TLC kinds
def test_green_csv_fhv_and_fhvhv_together(tmp_path, shared_data):
    green = tmp_path / "green_tripdata_2019-01.csv"
    green.write_text(
        "VendorID,lpep_pickup_datetime,lpep_dropoff_datetime,store_and_fwd_flag,RatecodeID,"
        "PULocationID,DOLocationID,passenger_count\n"
        "2,2019-01-01 00:05:00,2019-01-01 00:20:00,N,1,41,42,1\n"
        "2,2019-01-01 00:45:00,2019-01-01 01:10:00,N,1,42,41,1\n"
    )
    fhv = tmp_path / "fhv_tripdata_2019-01.parquet"  # FHV spells dropOff_datetime, PUlocationID
    pd.DataFrame(
        {
            "dispatching_base_num": ["B00001", "B00002", "B00003"],
            "pickup_datetime": ts(["2019-01-01 00:10", "2019-01-01 00:15", "2019-01-01 00:50"]),
            "dropOff_datetime": ts(["2019-01-01 00:40", "2019-01-01 00:25", "2019-01-01 01:05"]),
            "PUlocationID": [41.0, np.nan, 42.0],
            "DOlocationID": [42.0, 41.0, np.nan],
            "SR_Flag": [None, None, None],
        }
    ).to_parquet(fhv, index=False)
    fhvhv = tmp_path / "fhvhv_tripdata_2019-02.parquet"
    pd.DataFrame(
        {
            "hvfhs_license_num": ["HV0003"],
            "request_datetime": ts(["2019-01-01 00:00"]),
            "pickup_datetime": ts(["2019-01-01 00:02"]),
            "dropoff_datetime": ts(["2019-01-01 00:31"]),
            "PULocationID": np.array([41], dtype=np.int64),
            "DOLocationID": np.array([41], dtype=np.int64),
        }
    ).to_parquet(fhvhv, index=False)
    ds = load_nyc_tlc(
        [str(tmp_path / "*.parquet"), green],
        zones="manhattan",
        start="2019-01-01",
        end="2019-01-01",
        data_dir=shared_data,
    )
    assert len(ds.extra["files"]) == 3
    # outflow 41: green 00:05, fhv 00:10, fhvhv 00:02 -> slot 0
    assert cell(ds, "2019-01-01 00:00", "41", OUT) == 3
    # outflow 42: green 00:45, fhv 00:50 -> slot 1
    assert cell(ds, "2019-01-01 00:30", "42", OUT) == 2
    # inflow 42: green 00:20 (slot 0), fhv 00:40 (slot 1)
    assert cell(ds, "2019-01-01 00:00", "42", IN) == 1
    assert cell(ds, "2019-01-01 00:30", "42", IN) == 1
    # inflow 41: fhv 00:25 (slot 0), fhvhv 00:31 (slot 1), green 01:10 (slot 2)
    assert [cell(ds, f"2019-01-01 {h}", "41", IN) for h in ("00:00", "00:30", "01:00")] == [1, 1, 1]
    d = ds.extra["dropped"]
    assert d["outflow"]["missing_zone"] == 1 and d["inflow"]["missing_zone"] == 1
    assert ds.flows.sum() == 10  # 6 trips x 2 events, less the 2 blank zones


# ------------------------------------------------------------------------------ Chicago
CHICAGO_HEADER = (
    "Trip ID,Taxi ID,Trip Start Timestamp,Trip End Timestamp,Trip Seconds,Trip Miles,"
    "Pickup Census Tract,Dropoff Census Tract,Pickup Community Area,Dropoff Community Area,Fare\n"
)


def test_chicago_csv_hand_counts(tmp_path, shared_data):
    path = tmp_path / "Taxi_Trips_2021.csv"
    path.write_text(
        CHICAGO_HEADER
        + "a,t1,01/01/2021 12:00:00 AM,01/01/2021 12:15:00 AM,600,1.2,,,8,32,7.5\n"
        + "b,t2,01/01/2021 12:15:00 AM,01/01/2021 12:45:00 AM,1500,5.0,,,8,,15\n"
        + "c,t3,01/01/2021 12:30:00 PM,01/01/2021 01:00:00 PM,1500,5.0,,,,76,40\n"
        + "d,t4,01/01/2021 11:45:00 PM,01/02/2021 12:00:00 AM,600,1.0,,,32,8,9\n"
    )
    ds = load_chicago_trips([path], start="2021-01-01", end="2021-01-01", data_dir=shared_data)
    assert ds.flows.shape == (48, 77, 2)
    assert ds.region_ids[0] == "1" and ds.region_ids[76] == "77"
    assert cell(ds, "2021-01-01 00:00", "8", OUT) == 2
    assert cell(ds, "2021-01-01 00:00", "32", IN) == 1
    assert cell(ds, "2021-01-01 13:00", "76", IN) == 1  # 12:30 PM start, 1:00 PM end
    assert cell(ds, "2021-01-01 23:30", "32", OUT) == 1
    d = ds.extra["dropped"]
    assert d["outflow"]["missing_zone"] == 1  # blank pickup area of trip c
    assert d["inflow"]["missing_zone"] == 1  # blank drop-off area of trip b
    assert d["inflow"]["outside_period"] == 1  # trip d ends at midnight the next day
    assert ds.flows.sum() == 5
    assert ds.adjacency.shape == (77, 77) and len(ds.pois) == 77


def test_chicago_parquet_api_names(tmp_path, shared_data):
    path = tmp_path / "chicago.parquet"
    pd.DataFrame(
        {
            "trip_start_timestamp": ts(["2021-01-01 00:15", "2021-01-01 00:45"]),
            "trip_end_timestamp": ts(["2021-01-01 00:30", "2021-01-01 01:00"]),
            "pickup_community_area": [8.0, 77.0],
            "dropoff_community_area": [1.0, 8.0],
        }
    ).to_parquet(path, index=False)
    ds = load_chicago_trips(
        [path], interval_minutes=15, start="2021-01-01", end="2021-01-01", data_dir=shared_data,
        graph="polygons",
    )
    assert ds.num_slots == 96
    assert cell(ds, "2021-01-01 00:15", "8", OUT) == 1
    assert cell(ds, "2021-01-01 00:45", "77", OUT) == 1
    assert cell(ds, "2021-01-01 00:30", "1", IN) == 1
    assert cell(ds, "2021-01-01 01:00", "8", IN) == 1
    assert ds.adjacency[0].sum() > 0 and np.array_equal(ds.adjacency, ds.adjacency.T)


# ------------------------------------------------------------------------------ engine
def test_engine_without_any_city(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text(
        "tpep_pickup_datetime,tpep_dropoff_datetime,PULocationID,DOLocationID\n"
        "2020-03-01T00:00:00,2020-03-01T00:10:00,1,2\n"
        "2020-03-01T00:20:00,2020-03-01T00:25:00,2,2\n"
        "2020-03-01T00:25:00,2020-03-01T00:35:00,3,1\n"
    )
    agg = aggregate_trips(
        [path], columns=NYC_COLUMNS, regions=[2, 1], known=[3], interval_minutes=15,
        start="2020-03-01 00:00", end="2020-03-01 00:30",
    )
    assert agg.flows.shape == (3, 2, 2)
    # region order follows `regions`: column 0 is zone 2
    assert agg.flows[:, 0, IN].tolist() == [1, 1, 0]
    assert agg.flows[:, 0, OUT].tolist() == [0, 1, 0]
    assert agg.flows[:, 1, OUT].tolist() == [1, 0, 0]
    assert agg.flows[:, 1, IN].tolist() == [0, 0, 1]
    assert agg.dropped["outflow"]["outside_selection"] == 1
