"""Progress that suits where it goes: a live bar on a terminal, plain periodic lines in a log file.

A bar's carriage returns and escape codes turn a redirected log into noise, so when stderr is not a
terminal :func:`progress_bar` prints one ordinary line at most every ``FLOWDISTILL_PROGRESS_SECONDS``
seconds (default 30) instead.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any, Protocol


class Bar(Protocol):
    def update(self, n: int = 1) -> Any: ...

    def set_postfix(self, **kw: Any) -> Any: ...

    def close(self) -> Any: ...


def is_terminal() -> bool:
    """True when stderr is an interactive terminal (where a live bar can redraw itself)."""
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def _interval() -> float:
    try:
        return max(float(os.environ.get("FLOWDISTILL_PROGRESS_SECONDS", "30")), 0.0)
    except ValueError:
        return 30.0


class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def set_postfix(self, **kw: Any) -> None:
        pass

    def close(self) -> None:
        pass


class PlainProgress:
    """``desc: done/total unit (pct), key=value, elapsed`` lines, at most one per interval."""

    def __init__(self, total: int, desc: str, unit: str, interval: float | None = None) -> None:
        self.total, self.desc, self.unit = total, desc, unit
        self.interval = _interval() if interval is None else interval
        self.done = 0
        self.post: dict[str, Any] = {}
        self.t0 = self.last = time.monotonic()

    def update(self, n: int = 1) -> None:
        self.done += n
        now = time.monotonic()
        if now - self.last >= self.interval and self.done < self.total:
            self.last = now
            self._line(now)

    def set_postfix(self, **kw: Any) -> None:
        self.post.update(kw)

    def close(self) -> None:
        pass

    def _line(self, now: float) -> None:
        pct = f" ({100 * self.done / self.total:.0f} %)" if self.total else ""
        post = "".join(f", {k} {v}" for k, v in self.post.items())
        log_line(f"{self.desc}: {self.done}/{self.total} {self.unit}s{pct}{post}, "
                 f"{now - self.t0:.0f} s")


def progress_bar(total: int, desc: str, enabled: bool = True, unit: str = "it") -> Bar:
    """A tqdm bar on a terminal, plain periodic lines otherwise, nothing when not ``enabled``."""
    if not enabled or os.environ.get("TQDM_DISABLE"):
        return _NoBar()
    if is_terminal():
        from tqdm.auto import tqdm

        return tqdm(total=total, desc=desc, leave=False, unit=unit)
    return PlainProgress(total, desc, unit)


def log_line(text: str) -> None:
    """One line on stderr that does not break a live bar (tqdm.write) or a log file (print)."""
    if is_terminal():
        from tqdm.auto import tqdm

        tqdm.write(text, file=sys.stderr)
    else:
        print(text, file=sys.stderr, flush=True)
