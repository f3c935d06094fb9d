"""`flowdistill data ...`: inspect, build and download datasets."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from flowdistill.cli.common import (
    DataDirOpt,
    EndOpt,
    ForceOpt,
    StartOpt,
    console,
    out,
    print_json,
)
from flowdistill.data.dataset import FlowDataset
from flowdistill.data.errors import DataError
from flowdistill.data.sources import load_dataset

app = typer.Typer(help="Inspect, build and download datasets.", no_args_is_help=True)
build_app = typer.Typer(
    help="Build a dataset file from trip records or a tensor.", no_args_is_help=True
)
app.add_typer(build_app, name="build")

OutOpt = Annotated[Path, typer.Option("--out", "-o", help="Dataset file to write (.npz).")]
IntervalOpt = Annotated[int, typer.Option("--interval", help="Slot length in minutes.")]
FilesArg = Annotated[
    list[str],
    typer.Argument(help="Record files (.parquet / .csv), glob patterns or folders."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON only.")]


def _show(summary: dict, as_json: bool) -> None:
    if as_json:
        print_json(summary)
        return
    for k, v in summary.items():
        out.print(f"[bold]{k:>16}[/]  {v}")


def _check_out(path: Path, force: bool) -> None:
    """Before any record is read: the dataset file must be new (or --force) and writable."""
    from flowdistill.engine.outputs import check_output_file

    if path.is_dir():  # not silently FOLDER.npz beside it
        check_output_file(path, force, "dataset file (--out)")
    check_output_file(path if path.suffix == ".npz" else path.with_suffix(".npz"), force,
                      "dataset file (--out)")


def _save(ds: FlowDataset, path: Path, as_json: bool) -> None:
    written = ds.save(path)
    summary = {**ds.summary(), "written": str(written)}
    if "dropped" in ds.extra:
        summary["rows"] = ds.extra.get("rows")
        summary["dropped"] = ds.extra["dropped"]
    _show(summary, as_json)
    if not as_json:
        console.print(f"[green]wrote[/] {written}")


@app.command("info")
def info(
    dataset: Annotated[str, typer.Argument(help="'nyc-taxi-manhattan' or a dataset file.")] = (
        "nyc-taxi-manhattan"
    ),
    data_dir: DataDirOpt = None,
    start: StartOpt = None,
    end: EndOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Slots, regions, channels, period and interval of a dataset."""
    ds = load_dataset(dataset, data_dir, start, end)
    _show(ds.summary(), as_json)


@build_app.command("nyc-tlc")
def build_nyc_tlc(
    files: FilesArg,
    out_path: OutOpt,
    zones: Annotated[
        str,
        typer.Option("--zones", help="'all' (263 TLC zones), a borough, or boroughs a,b."),
    ] = "all",
    interval: IntervalOpt = 30,
    start: StartOpt = None,
    end: EndOpt = None,
    internal_only: Annotated[
        bool,
        typer.Option(
            "--internal-only", help="Count only trips with both ends in the chosen zones."
        ),
    ] = False,
    name: Annotated[str | None, typer.Option("--name", help="Dataset name.")] = None,
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
    force: ForceOpt = False,
) -> None:
    """NYC TLC yellow / green / FHV / FHVHV trip records → inflow/outflow per taxi zone."""
    _check_out(out_path, force)
    from flowdistill.data.trips import load_nyc_tlc

    ds = load_nyc_tlc(
        files,
        zones=zones,
        interval_minutes=interval,
        start=start,
        end=end,
        data_dir=data_dir,
        internal_only=internal_only,
        name=name,
    )
    _save(ds, out_path, as_json)


@build_app.command("chicago")
def build_chicago(
    files: FilesArg,
    out_path: OutOpt,
    interval: IntervalOpt = 30,
    start: StartOpt = None,
    end: EndOpt = None,
    graph: Annotated[
        str,
        typer.Option("--graph", help="'rn' (the paper's CHI_TAXI_rn_adj.npy) or 'polygons'."),
    ] = "rn",
    name: Annotated[str, typer.Option("--name", help="Dataset name.")] = "chicago-taxi",
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
    force: ForceOpt = False,
) -> None:
    """Chicago Taxi Trips records → inflow/outflow per community area (77)."""
    _check_out(out_path, force)
    from flowdistill.data.chicago import load_chicago_trips

    ds = load_chicago_trips(
        files,
        interval_minutes=interval,
        start=start,
        end=end,
        data_dir=data_dir,
        graph=graph,
        name=name,
    )
    _save(ds, out_path, as_json)


def _parse_channels(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    parts = [p.strip() for p in text.split(",")]
    if len(parts) != 2 or not all(p.isdigit() for p in parts):
        raise DataError("--channels", f"expected two channel indices IN,OUT, got {text!r}")
    return int(parts[0]), int(parts[1])


@build_app.command("tensor")
def build_tensor(
    out_path: OutOpt,
    file: Annotated[
        Path | None, typer.Argument(help="A .npz or .npy flow tensor (or give --inflow/--outflow).")
    ] = None,
    layout: Annotated[
        str | None,
        typer.Option("--layout", help="TNC (slots first) or NTC; channel files default to TNC."),
    ] = None,
    inflow: Annotated[
        Path | None,
        typer.Option("--inflow", help="Inflow alone: slots × zones, .npz / .npy / .csv."),
    ] = None,
    outflow: Annotated[
        Path | None,
        typer.Option("--outflow", help="Outflow alone, same shape and zones as --inflow."),
    ] = None,
    missing_days: Annotated[
        str | None,
        typer.Option(
            "--missing-days",
            help="Days the series lacks (no rows): 2021-01-02,2021-01-04..2021-01-05, "
            "'weekends', a file of dates, or 'auto' (the whole days --timestamps skip).",
        ),
    ] = None,
    start: Annotated[
        str | None, typer.Option("--start", help="Start of the first slot (YYYY-MM-DD[ HH:MM]).")
    ] = None,
    interval: Annotated[
        int | None, typer.Option("--interval", help="Slot length in minutes.")
    ] = None,
    key: Annotated[str | None, typer.Option("--key", help="Array name inside the .npz.")] = None,
    channels: Annotated[
        str | None, typer.Option("--channels", help="Inflow,outflow channel indices, e.g. 0,1.")
    ] = None,
    adjacency: Annotated[
        Path | None, typer.Option("--adjacency", help="N×N graph, .npy or .csv.")
    ] = None,
    timestamps: Annotated[
        Path | None,
        typer.Option("--timestamps", help="One timestamp per slot, .npy or .csv (first column)."),
    ] = None,
    name: Annotated[str | None, typer.Option("--name", help="Dataset name.")] = None,
    as_json: JsonOpt = False,
    force: ForceOpt = False,
) -> None:
    """A [T, N, C] or [N, T, C] tensor (or separate inflow/outflow files) with its calendar."""
    _check_out(out_path, force)
    from flowdistill.data.tensors import load_channel_files, load_tensor

    if (inflow is None) != (outflow is None):
        raise DataError("--inflow/--outflow", "give both files, one per channel")
    if inflow is not None:
        if file is not None or channels is not None:
            raise DataError("--inflow", "give either one tensor FILE or --inflow and --outflow")
        ds = load_channel_files(
            inflow, outflow, layout=layout or "TNC", start=start, interval_minutes=interval, key=key,
            adjacency=adjacency, timestamps=timestamps, name=name, missing_days=missing_days,
        )
        _save(ds, out_path, as_json)
        return
    if file is None:
        raise DataError("data build tensor", "give a tensor FILE, or --inflow and --outflow")
    if layout is None:
        raise DataError("--layout", "state the tensor's layout: TNC (slots first) or NTC")
    ds = load_tensor(
        file,
        layout=layout,
        start=start,
        interval_minutes=interval,
        key=key,
        channels=_parse_channels(channels),
        adjacency=adjacency,
        timestamps=timestamps,
        name=name,
        missing_days=missing_days,
    )
    _save(ds, out_path, as_json)


@app.command("download")
def download(
    dataset: Annotated[
        str, typer.Argument(help="nyc-taxi-manhattan, nyc-taxi-zones or chicago.")
    ] = "nyc-taxi-manhattan",
    data_dir: DataDirOpt = None,
    force: Annotated[
        bool, typer.Option("--force", help="Fetch even files already present.")
    ] = False,
) -> None:
    """Fetch a dataset from its public source into the data dir (needs internet)."""
    from flowdistill.data.download import download as fetch

    for row in fetch(dataset, data_dir, force=force):
        out.print(f"{row['status']:>10}  {row['file']}")
