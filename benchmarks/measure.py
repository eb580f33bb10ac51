"""Wall time and peak memory of a command, measured from outside the process.

Peak memory is the maximum resident set size reported by wait4(2) for the child,
which on Linux also covers the grandchildren it waited for (dbt runs as a
subprocess of the CLI), so `apy-runway build` is measured with dbt included.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

# `python -m benchmarks.<x>` children import this package from the repository root
REPO_ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Measurement:
    argv: list[str]
    wall_s: float
    peak_rss_mb: float
    returncode: int
    loadavg_start: float = 0.0


# A fork copies the parent's resident pages into the child's memory counters, and
# Linux keeps that high-water mark across exec: a command started straight from a
# big process (pytest, a DuckDB-grown benchmark runner) would report at least the
# parent's RSS. So a tiny launcher (python -S, ~10 MB) starts the command and
# reports wait4's figures for it, which include the command's own children.
_LAUNCHER = """
import os, sys
pid = os.fork()
if pid == 0:
    try:
        os.execvp(sys.argv[2], sys.argv[2:])
    finally:
        os._exit(127)
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as report:
    report.write(str(usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status))
"""


def measure(argv: list[str], env: dict | None = None, cwd=None, log_path=None) -> Measurement:
    """Run argv to completion; raise if it fails (its output goes to log_path)."""
    with (
        open(log_path, "ab") if log_path else contextlib.nullcontext(subprocess.DEVNULL) as out,
        tempfile.NamedTemporaryFile("r", suffix=".maxrss") as report,
    ):
        load = round(os.getloadavg()[0], 2)
        started = time.perf_counter()
        returncode = subprocess.run(
            [sys.executable, "-S", "-c", _LAUNCHER, report.name, *argv],
            env={**os.environ, **(env or {})},
            cwd=cwd or REPO_ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        ).returncode
        wall = time.perf_counter() - started
        maxrss_kb = int(report.read() or 0)
    result = Measurement(argv, wall, maxrss_kb / 1024, returncode, load)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {result.returncode} (log: {log_path})")
    return result


def python_argv(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]
