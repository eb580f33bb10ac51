"""Wall time and peak memory of a command, measured from outside the process.

Peak memory is the maximum resident set size reported by wait4(2) for the child,
which on Linux also covers the grandchildren it waited for (dbt runs as a
subprocess of the CLI), so `apy-runway build` is measured with dbt included.
"""
from __future__ import annotations

import os
import subprocess
import sys
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


def measure(argv: list[str], env: dict | None = None, cwd=None, log_path=None) -> Measurement:
    """Run argv to completion; raise if it fails (its output goes to log_path)."""
    out = open(log_path, "ab") if log_path else subprocess.DEVNULL
    try:
        load = round(os.getloadavg()[0], 2)
        started = time.perf_counter()
        process = subprocess.Popen(argv, env={**os.environ, **(env or {})}, cwd=cwd or REPO_ROOT,
                                   stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
        wall = time.perf_counter() - started
        process.returncode = os.waitstatus_to_exitcode(status)
    finally:
        if log_path:
            out.close()
    result = Measurement(argv, wall, usage.ru_maxrss / 1024, process.returncode, load)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} exited {result.returncode} (log: {log_path})")
    return result


def python_argv(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]
