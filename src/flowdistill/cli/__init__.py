"""The `flowdistill` command. Each command group lives in its own module and only parses and prints."""

from __future__ import annotations

import sys

import typer

from flowdistill.cli import data as data_cmd
from flowdistill.cli import experiments as bench_cmd
from flowdistill.cli import plots as plots_cmd
from flowdistill.cli import serving as serving_cmd
from flowdistill.cli import teacher as teacher_cmd
from flowdistill.cli import training as training_cmd
from flowdistill.cli.common import console, run_guarded

app = typer.Typer(
    name="flowdistill",
    help="Traffic-flow prediction with an LLM teacher distilled into a small MLP student.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(data_cmd.app, name="data")
app.add_typer(teacher_cmd.app, name="teacher")
app.add_typer(bench_cmd.app, name="bench")
training_cmd.register(app)
serving_cmd.register(app)
plots_cmd.register(app)


def main() -> None:
    """Console entry point: bad input ends with one clear line and exit code 2."""
    sys.exit(run_guarded(app))


__all__ = ["app", "main", "console"]
