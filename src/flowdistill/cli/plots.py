"""`flowdistill plot`: look at a trained run (learning curves, forecasts against truth, error map)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from flowdistill.cli.common import DataDirOpt, console
from flowdistill.cli.serving import DataOpt, RunOpt


def register(app: typer.Typer) -> None:
    """Add the plot command to the top-level app."""

    @app.command("plot")
    def plot(
        run: RunOpt,
        out_dir: Annotated[
            Path | None, typer.Option("--out", help="Folder for the PNGs (default: RUN/plots).")
        ] = None,
        what: Annotated[
            str, typer.Option("--what", help="Comma list of: curves, forecast, map.")
        ] = "curves,forecast,map",
        zones: Annotated[
            str | None,
            typer.Option("--zones", help="Zone ids for the forecast plot, e.g. 161,237 "
                         "(default: the 3 busiest)."),
        ] = None,
        week: Annotated[
            str | None,
            typer.Option("--week", help="First day of the week to plot (default: the first test day)."),
        ] = None,
        horizon: Annotated[
            int, typer.Option("--horizon", help="Forecast step plotted (1 = the next slot).")
        ] = 1,
        data: DataOpt = None,
        data_dir: DataDirOpt = None,
    ) -> None:
        """Draw a run's learning curves, forecast vs truth over a test week and a zone error map."""
        from flowdistill.data.errors import DataError
        from flowdistill.plots.run import plot_run

        kinds = [w.strip() for w in what.split(",") if w.strip()]
        bad = sorted(set(kinds) - {"curves", "forecast", "map"})
        if bad or not kinds:
            raise DataError("--what", f"unknown plot {bad or what!r}; choose from curves, forecast, map")
        zone_list = [z.strip() for z in zones.split(",") if z.strip()] if zones else None
        written = plot_run(
            run, out_dir or run / "plots", kinds, zones=zone_list, week=week, horizon=horizon,
            data=data, data_dir=data_dir, note=lambda msg: console.print(msg, soft_wrap=True),
        )
        for path in written:
            console.print(f"written {path}", soft_wrap=True)
