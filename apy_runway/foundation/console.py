"""Progress output and user-facing errors shared by every stage."""

from __future__ import annotations

import argparse
import re
import sys
import time


class UserError(Exception):
    """A problem with the user's input or files: printed as one line, exit code 2."""


def log(message: str) -> None:
    """Progress output: one timestamped line on stderr."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


_MEMORY_SIZE = re.compile(r"^\s*\d+(\.\d+)?\s*([KMGT]i?B|%)\s*$", re.IGNORECASE)


def memory_size(value: str) -> str:
    """argparse type for DuckDB memory limits: '1GB', '512MiB', '80%'."""
    if not _MEMORY_SIZE.match(value):
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a memory size: expected a number with KB/MB/GB/TB "
            f"(or KiB/MiB/GiB/TiB), or a percentage of RAM such as 80%"
        )
    return value.strip()
