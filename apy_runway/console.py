"""Progress output and user-facing errors shared by every stage."""
from __future__ import annotations

import sys
import time


class UserError(Exception):
    """A problem with the user's input or files: printed as one line, exit code 2."""


def log(message: str) -> None:
    """Progress output: one timestamped line on stderr."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)
