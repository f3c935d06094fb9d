"""One error type for bad input, so the CLI can print it plainly and exit non-zero."""

from __future__ import annotations

import os


class DataError(ValueError):
    """Bad input data: names the file (or dataset) and the problem."""

    def __init__(self, where: str | os.PathLike[str], problem: str) -> None:
        self.where = str(where)
        self.problem = problem
        super().__init__(f"{self.where}: {problem}")
