"""Progress output and user-facing errors shared by every stage."""

from __future__ import annotations

import logging
import sys
import time


class UserError(Exception):
    """A problem with the user's input or files: printed as one line, exit code 2."""


def log(message: str) -> None:
    """Progress output: one timestamped line on stderr."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class _ProgressLine(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        log(record.getMessage())


def show_progress_of(name: str) -> None:
    """Print the INFO records of a library's logger (models_py logs its progress
    through `logging`) as progress lines, like `log`."""
    logger = logging.getLogger(name)
    if not any(isinstance(handler, _ProgressLine) for handler in logger.handlers):
        logger.addHandler(_ProgressLine())
    logger.setLevel(logging.INFO)
    logger.propagate = False


# `apy-runway --verbose`: every line of dbt's output on the console
verbose = False
