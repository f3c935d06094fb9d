"""The forecasting service: a trained model behind HTTP (FastAPI), validated by pydantic.

``GET /health`` says it is up, ``GET /model`` what it serves, ``POST /forecast`` forecasts either from
the flows of the last L slots sent in the request or from a timestamp of the data it serves. Every
bad request (wrong shape, NaN, negative counts, unknown zones, a time outside the data) gets a 4xx
with one clear message; a model failure gets a 500 with a message. The process never dies of input.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from flowdistill.data.dataset import FlowDataset
from flowdistill.data.errors import DataError
from flowdistill.serving.forecaster import Forecast, Forecaster

MAX_BATCH_CELLS = 5_000_000  # refuse absurd payloads before turning them into arrays


class ForecastRequest(BaseModel):
    """Either ``flows`` (+ ``at``) or ``at`` alone (a time in the served data)."""

    model_config = ConfigDict(extra="forbid")

    at: datetime | None = Field(
        None, description="Start of the first forecast slot; the history is the L slots before it."
    )
    flows: list[list[list[float]]] | None = Field(
        None, description="Raw counts of the L slots before `at`: [slot][zone][channel]."
    )
    zones: list[str] | None = Field(
        None, description="Zone ids: the order of `flows`' zone axis, or which zones to return."
    )


class ZoneForecast(BaseModel):
    zone: str
    values: dict[str, list[float]]


class ForecastResponse(BaseModel):
    model: str
    interval_minutes: int
    timestamps: list[str]
    channels: list[str]
    forecast: list[ZoneForecast]


def _problem(status: int, message: str) -> JSONResponse:
    return JSONResponse(status_code=status, content={"error": message})


def create_app(forecaster: Forecaster, data: FlowDataset | None = None) -> FastAPI:
    """The app for one model; ``data`` is the series whose timestamps ``at`` may name."""
    served = forecaster.conform(data) if data is not None else None
    app = FastAPI(title="FlowDistill forecast", version="1")
    zones = list(forecaster.zones)
    zone_set = set(zones)
    channels = list(forecaster.bundle.channels)
    L = forecaster.input_len

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errs = exc.errors()
        first = errs[0] if errs else {}
        if first.get("type") == "json_invalid":
            return _problem(422, "the request body is not valid JSON")
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        more = f" (+{len(errs) - 1} more problems)" if len(errs) > 1 else ""
        return _problem(422, f"{where or 'request'}: {first.get('msg', 'invalid request')}{more}")

    @app.exception_handler(DataError)
    async def _bad_data(request: Request, exc: DataError) -> JSONResponse:
        return _problem(422, exc.problem)

    @app.exception_handler(Exception)
    async def _failure(request: Request, exc: Exception) -> JSONResponse:
        return _problem(500, f"the model failed: {type(exc).__name__}: {exc}")

    @app.get("/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "model": forecaster.bundle.model}

    @app.get("/model")
    def model_info() -> dict[str, Any]:
        info = forecaster.describe()
        info["served_data"] = None if served is None else {
            "name": served.name,
            "start": served.start.isoformat(),
            "end": served.end.isoformat(),
            "slots": served.num_slots,
        }
        return info

    @app.post("/forecast", response_model=ForecastResponse)
    def forecast(req: ForecastRequest) -> Any:
        if req.zones is not None:
            unknown = [z for z in req.zones if z not in zone_set]
            if unknown:
                return _problem(422, f"unknown zones {unknown[:10]}; the model knows {len(zones)} "
                                "zones (GET /model lists them)")
            if len(set(req.zones)) != len(req.zones):
                return _problem(422, "zones: repeated zone id")
        at = None if req.at is None else pd.Timestamp(req.at)
        if req.flows is not None:
            if at is None:
                return _problem(422, "at: required with flows (the forecast's first slot; the "
                                "calendar of the history depends on it)")
            result = _from_flows(req.flows, req.zones, at)
        else:
            if served is None:
                return _problem(422, "flows: required (this server serves no data to look up "
                                "`at` in)")
            result = forecaster.forecast_dataset(served, at)
            if req.zones is not None:
                pick = [zones.index(z) for z in req.zones]
                result = Forecast(result.times, list(req.zones), result.channels,
                                  result.values[:, pick], result.model)
        return _response(result)

    def _from_flows(flows: list, order: list[str] | None, at: pd.Timestamp) -> Forecast:
        n = len(order) if order is not None else len(zones)
        if order is not None and len(order) != len(zones):
            raise DataError("zones", f"with flows, zones must list all {len(zones)} zones of the "
                            f"model in the order of the flows, got {len(order)}")
        shape_msg = f"flows must be {L} slots × {n} zones × {len(channels)} channels " \
                    f"({', '.join(channels)})"
        if len(flows) != L:
            raise DataError("flows", f"{shape_msg}; got {len(flows)} slots")
        try:  # the common case in one numpy pass; the loop below only names what is wrong
            arr = np.asarray(flows, dtype=np.float32)
        except ValueError:
            arr = None
        if arr is not None and arr.shape == (L, n, len(channels)) and np.isfinite(arr).all() \
                and (arr >= 0).all():
            if order is not None:
                arr = arr[:, [order.index(z) for z in zones]]
            return forecaster.forecast(arr, at)
        for t, row in enumerate(flows):
            if len(row) != n:
                raise DataError("flows", f"{shape_msg}; slot {t} has {len(row)} zones")
            for z, cell in enumerate(row):
                if len(cell) != len(channels):
                    raise DataError("flows", f"{shape_msg}; slot {t}, zone {z} has {len(cell)} values")
                for c, v in enumerate(cell):
                    if not math.isfinite(v):
                        raise DataError("flows", f"slot {t}, zone {(order or zones)[z]}, "
                                        f"{channels[c]} is {v}: counts must be finite numbers")
                    if v < 0:
                        raise DataError("flows", f"slot {t}, zone {(order or zones)[z]}, "
                                        f"{channels[c]} is {v}: counts cannot be negative")
        arr = np.asarray(flows, dtype=np.float32)
        if order is not None:
            arr = arr[:, [order.index(z) for z in zones]]
        return forecaster.forecast(arr, at)

    def _response(result: Forecast) -> dict[str, Any]:
        return {
            "model": result.model,
            "interval_minutes": forecaster.bundle.interval_minutes,
            "timestamps": [t.isoformat() for t in result.times],
            "channels": list(result.channels),
            "forecast": [
                {"zone": z, "values": {c: [round(float(v), 3) for v in result.values[:, n, k]]
                                       for k, c in enumerate(result.channels)}}
                for n, z in enumerate(result.zones)
            ],
        }

    return app
