"""Shared CLI pieces: options, error handling, printing."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from flowdistill.data.errors import DataError

console = Console(stderr=True)
out = Console()

DataDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        envvar="FLOWDISTILL_DATA_DIR",
        help="Folder holding the datasets (default: $FLOWDISTILL_DATA_DIR, else ./data).",
    ),
]
DatasetOpt = Annotated[
    str,
    typer.Option("--dataset", help="'nyc-taxi-manhattan' or a dataset file from `data build`."),
]
StartOpt = Annotated[str | None, typer.Option("--start", help="First day of the period (YYYY-MM-DD).")]
EndOpt = Annotated[str | None, typer.Option("--end", help="Last day of the period (YYYY-MM-DD).")]


def run_guarded(app: typer.Typer) -> int:
    """Run the app; turn bad input into one red line and exit code 2, never a traceback."""
    try:
        app(standalone_mode=False)
    except DataError as exc:
        console.print(f"[bold red]error:[/] {exc}")
        return 2
    except (ValueError, FileNotFoundError) as exc:
        console.print(f"[bold red]error:[/] {exc}")
        return 2
    except typer.Exit as exc:
        return int(exc.exit_code or 0)
    except typer.Abort:
        console.print("aborted")
        return 130
    except Exception as exc:  # click usage errors
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            return exc.exit_code
        raise
    return 0


def print_json(obj: Any) -> None:
    out.print_json(json.dumps(obj, default=str))


def metrics_table(title: str, rows: list[tuple[str, dict[str, float]]]) -> Table:
    """A small MAE/RMSE/MAPE table for the terminal."""
    table = Table(title=title)
    table.add_column("model")
    for col in ("MAE", "RMSE", "MAPE"):
        table.add_column(col, justify="right")
    for name, m in rows:
        table.add_row(name, f"{m['mae']:.3f}", f"{m['rmse']:.3f}", f"{m.get('mape', float('nan')):.3f}")
    return table
