"""`flowdistill predict`, `flowdistill export` and `flowdistill serve`: a trained run put to use."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from flowdistill.cli.common import DataDirOpt, console, out
from flowdistill.data.errors import DataError

RunOpt = Annotated[
    Path, typer.Option("--run", help="Run folder written by `train`/`distill` (model.pt, model.json).")
]
DataOpt = Annotated[
    str | None,
    typer.Option(
        "--data",
        help="Dataset name, dataset file (.npz) or TLC trip records (.parquet/.csv, glob, folder); "
        "default: the dataset the run was trained on.",
    ),
]


def register(app: typer.Typer) -> None:
    """Add predict, export and serve to the top-level app."""

    @app.command("predict")
    def predict(
        run: RunOpt,
        out_path: Annotated[Path, typer.Option("--out", help="Forecast file: .csv or .json.")],
        data: DataOpt = None,
        at: Annotated[
            str | None,
            typer.Option(
                "--at", help="Start of the first forecast slot (the 12 slots before it are the "
                "input); default: just after the last slot of the data.",
            ),
        ] = None,
        data_dir: DataDirOpt = None,
    ) -> None:
        """Forecast the next 12 slots for every zone from the 12 slots before --at."""
        from flowdistill.serving.forecaster import Forecaster
        from flowdistill.serving.inputs import check_covered, load_input

        if out_path.suffix.lower() not in (".csv", ".json"):
            raise DataError(out_path, "the output must end in .csv or .json")
        forecaster = Forecaster.from_run(run)
        ds = forecaster.conform(load_input(data, forecaster, data_dir))
        idx = forecaster.slot_of(ds, at)
        check_covered(ds, idx, forecaster.input_len)
        result = forecaster.forecast_dataset(ds, ds.timestamps[idx - 1] + forecaster.interval)
        written = result.write(out_path)
        console.print(
            f"{forecaster.bundle.model}: {len(result.times)} slots × {len(result.zones)} zones from "
            f"{result.times[0]} to {result.times[-1]} (input {ds.timestamps[idx - forecaster.input_len]}"
            f" … {ds.timestamps[idx - 1]}); written to {written}", soft_wrap=True,
        )

    @app.command("export")
    def export(
        run: RunOpt,
        out_path: Annotated[Path, typer.Option("--out", help="Model file to write (.onnx).")],
        fmt: Annotated[str, typer.Option("--format", help="Only 'onnx'.")] = "onnx",
        data: DataOpt = None,
        windows: Annotated[
            int, typer.Option("--windows", help="Real windows onnxruntime is checked on.")
        ] = 64,
        data_dir: DataDirOpt = None,
    ) -> None:
        """Export the run's model to ONNX and check onnxruntime against torch on real windows."""
        from flowdistill.serving.export import TOLERANCE, export_onnx, real_windows, verify_onnx
        from flowdistill.serving.forecaster import Forecaster
        from flowdistill.serving.inputs import load_input

        if fmt.lower() != "onnx":
            raise DataError("--format", f"unknown format {fmt!r}; only 'onnx' is supported")
        forecaster = Forecaster.from_run(run)
        inputs = real_windows(forecaster, load_input(data, forecaster, data_dir), windows)
        path = export_onnx(forecaster, out_path, tuple(a[:2] for a in inputs))
        check = verify_onnx(forecaster, path, inputs)
        out.print(
            f"onnxruntime vs torch on {check.windows} real windows: max abs diff "
            f"{check.max_abs_diff:.2e} (scaled units; {check.max_abs_diff_counts:.2e} trips) — "
            + ("[green]OK[/]" if check.passed else f"[red]above {TOLERANCE:g}[/]"),
            soft_wrap=True,
        )
        if not check.passed:
            path.unlink()
            raise DataError(path, f"onnxruntime differs from torch by {check.max_abs_diff:.2e} "
                            f"(> {TOLERANCE:g}); the file was removed")
        console.print(f"written {path} ({path.stat().st_size / 1024:.0f} KiB)", soft_wrap=True)

    @app.command("serve")
    def serve(
        run: RunOpt,
        host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
        port: Annotated[int, typer.Option("--port")] = 8000,
        data: DataOpt = None,
        no_data: Annotated[
            bool, typer.Option("--no-data", help="Serve flows-only forecasts (no data loaded).")
        ] = False,
        threads: Annotated[int, typer.Option("--threads", help="torch threads.")] = 1,
        data_dir: DataDirOpt = None,
    ) -> None:
        """Serve the run's model over HTTP: GET /health, GET /model, POST /forecast."""
        import torch
        import uvicorn

        from flowdistill.serving.api import create_app
        from flowdistill.serving.forecaster import Forecaster
        from flowdistill.serving.inputs import load_input

        torch.set_num_threads(max(threads, 1))
        forecaster = Forecaster.from_run(run)
        ds = None if no_data else load_input(data, forecaster, data_dir)
        app = create_app(forecaster, ds)
        console.print(f"serving {forecaster.bundle.model} from {run} on http://{host}:{port}",
                      soft_wrap=True)
        uvicorn.run(app, host=host, port=port, log_level="warning")
