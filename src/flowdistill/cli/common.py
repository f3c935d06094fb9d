"""Shared CLI pieces: options, error handling, printing."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
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
ThreadsOpt = Annotated[
    int | None,
    typer.Option(
        "--threads", min=1,
        help="CPU threads for torch. Default: the cores free for this job — the cores this process "
        "may use minus the rounded 1-minute load average, at least 1 — so two jobs side by side do "
        "not fight over the same cores.",
    ),
]
ForceOpt = Annotated[
    bool, typer.Option("--force", help="Overwrite outputs that already exist (a finished run).")
]
ResumeOpt = Annotated[
    bool,
    typer.Option("--resume", help="Continue the unfinished run in --out from its last checkpoint "
                 "(refused if its saved settings differ)."),
]


def check_ratio(value: float) -> float:
    """A training ratio must leave room for validation and test windows."""
    if not 0.0 < value < 1.0:
        raise typer.BadParameter(f"{value} is not a share between 0 and 1 (e.g. 0.1 for 10 %)")
    return value


def check_device_option(value: str) -> str:
    """An impossible device is a usage error before anything loads (the engine says why)."""
    from flowdistill.engine.trainer import check_device

    try:
        check_device(value)
    except DataError as exc:
        raise typer.BadParameter(exc.problem) from None
    return value


# What to tell the user after Ctrl-C: [after a training checkpoint, elsewhere (None: nothing)].
_DEFAULT_HINTS: tuple[str | None, str | None] = (
    "run the same command again with --resume to continue from it", None)
_resume_hint: list[str | None] = list(_DEFAULT_HINTS)


def set_resume_hint(text: str, outside_training: bool = False) -> None:
    """How the running command continues after Ctrl-C: after a training checkpoint, or (with
    ``outside_training``) after an interruption anywhere, e.g. between part files."""
    _resume_hint[1 if outside_training else 0] = text


def free_cores() -> int:
    """Cores this process may use minus the rounded 1-minute load average, at least 1."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):
        load = 0.0
    return max(1, cores - round(load))


def set_threads(threads: int | None) -> int:
    """Fix torch's thread pools before any torch work (``None``: :func:`free_cores`).

    Two CPU-heavy torch jobs that each take every core slow each other down several-fold
    (benchmarks/README.md); one thread per free core keeps each near full speed.
    """
    import torch

    from flowdistill.engine.allocator import retain_freed_memory

    retain_freed_memory()  # every command, not only those that train: latencies reuse memory too
    n = threads if threads and threads > 0 else free_cores()
    torch.set_num_threads(n)
    try:  # only possible before the first inter-op parallel work of the process
        torch.set_num_interop_threads(n)
    except RuntimeError:
        pass
    return n


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _error(text: str, hint: str | None = None) -> None:
    console.print(f"[bold red]error:[/] {escape(_one_line(text))}", soft_wrap=True)
    if hint:
        console.print(f"  {escape(hint)}", soft_wrap=True)


def _usage_error(exc: Exception) -> int:
    """Click/typer usage errors: the problem, then where the right usage is."""
    ctx = getattr(exc, "ctx", None)
    if type(exc).__name__ == "NoArgsIsHelpError" and ctx is not None:
        out.print(ctx.get_help(), soft_wrap=True, markup=False, highlight=False)
        return 0
    fmt = getattr(exc, "format_message", None)
    message = fmt() if callable(fmt) else str(exc)
    where = ctx.command_path if ctx is not None else "flowdistill"
    _error(message, f"see `{where} --help` for the options and commands")
    return int(getattr(exc, "exit_code", 2) or 2)


def _os_error(exc: OSError) -> str:
    """Name the file the user gave, not a temporary one next to it."""
    name = exc.filename
    if name and Path(str(name)).name.startswith(".") and ".tmp" in Path(str(name)).name:
        name = Path(str(name)).parent
    return f"{name}: {exc.strerror}" if name and exc.strerror else str(exc)


def run_guarded(app: typer.Typer, args: list[str] | None = None) -> int:
    """Run the app the way users get it: every mistake is one or two plain lines and exit code 2,
    Ctrl-C is exit code 130 with how to resume; a traceback only with ``--debug``."""
    import signal
    import threading

    from flowdistill.engine.trainer import RunInterrupted

    argv = list(sys.argv[1:] if args is None else args)
    _resume_hint[:] = _DEFAULT_HINTS  # each invocation starts from the defaults
    debug = "--debug" in argv or bool(os.environ.get("FLOWDISTILL_DEBUG"))
    argv = [a for a in argv if a != "--debug"]
    interrupted = []

    def on_sigint(signum: int, frame: Any) -> None:
        interrupted.append(True)
        raise KeyboardInterrupt

    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        rv = app(args=argv, prog_name="flowdistill", standalone_mode=False)
        if interrupted:  # typer turns KeyboardInterrupt into a return value of 130
            _error("interrupted; nothing was written for the unfinished step", _resume_hint[1])
            return 130
        return rv if isinstance(rv, int) and not isinstance(rv, bool) else 0
    except RunInterrupted as exc:
        if debug:
            raise
        if exc.checkpoint is not None:
            _error(f"interrupted; the last checkpoint ({exc.epochs_done} epochs done) is intact in "
                   f"{exc.checkpoint}", _resume_hint[0])
        else:
            _error("interrupted before the first epoch ended; nothing to resume",
                   "run the same command again to start over")
        return 130
    except KeyboardInterrupt:
        if debug:
            raise
        _error("interrupted; nothing was written for the unfinished step", _resume_hint[1])
        return 130
    except typer.Exit as exc:
        return int(exc.exit_code or 0)
    except typer.Abort:
        _error("aborted")
        return 130
    except DataError as exc:
        if debug:
            raise
        _error(str(exc))
        return 2
    except typer.TyperException as exc:  # click usage errors (bad option, value, command)
        if debug:
            raise
        return _usage_error(exc)
    except OSError as exc:
        if debug:
            raise
        _error(_os_error(exc))
        return 2
    except ValueError as exc:
        if debug:
            raise
        _error(str(exc))
        return 2
    except Exception as exc:
        if debug:
            raise
        _error(f"internal error: {type(exc).__name__}: {exc}",
               "run again with --debug for the traceback, and please report it")
        return 1
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


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
