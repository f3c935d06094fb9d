"""`flowdistill experiments ...` commands."""

from __future__ import annotations

import typer

app = typer.Typer(help="experiments commands.", no_args_is_help=True)
