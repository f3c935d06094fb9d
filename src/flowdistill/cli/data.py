"""`flowdistill data ...`: inspect, build and download datasets."""

from __future__ import annotations

from typing import Annotated

import typer

from flowdistill.cli.common import DataDirOpt, EndOpt, StartOpt, out, print_json
from flowdistill.data.sources import load_dataset

app = typer.Typer(help="Inspect, build and download datasets.", no_args_is_help=True)


@app.command("info")
def info(
    dataset: Annotated[str, typer.Argument(help="'nyc-taxi-manhattan' or a dataset file.")] = (
        "nyc-taxi-manhattan"
    ),
    data_dir: DataDirOpt = None,
    start: StartOpt = None,
    end: EndOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON only.")] = False,
) -> None:
    """Slots, regions, channels, period and interval of a dataset."""
    ds = load_dataset(dataset, data_dir, start, end)
    summary = ds.summary()
    if as_json:
        print_json(summary)
        return
    for k, v in summary.items():
        out.print(f"[bold]{k:>16}[/]  {v}")
