"""`flowdistill teacher ...` commands."""

from __future__ import annotations

import typer

app = typer.Typer(help="teacher commands.", no_args_is_help=True)
