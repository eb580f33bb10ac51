"""What every command's flags share: the `Command` record the registry holds,
the --home flag and the argparse type of DuckDB memory limits.

The flag modules (landing.py, warehouse.py, operations.py, board.py, run_all.py,
refresh.py) import only the standard library, the light constants
(apy_runway.foundation.defaults, inference.contracts, models_py.config) and
this module; each command's run function imports its stage inside itself.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from apy_runway.foundation.paths import ProjectPaths


class Command(NamedTuple):
    """One subcommand: its help line, the function adding its flags, and the
    function running it (args, paths) -> exit code."""

    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace, ProjectPaths], int]


HOME_HELP = "project home holding data/ and runs/ (default: $APY_RUNWAY_HOME or the repo)"


def add_home(parser: argparse.ArgumentParser, top: bool = False) -> None:
    """--home, on the top-level parser (default None) and on every subcommand
    (no default: given after the subcommand, it wins; absent, the top's stays)."""
    parser.add_argument("--home", default=None if top else argparse.SUPPRESS, help=HOME_HELP)
    parser.add_argument(
        "--verbose",
        action="store_true",
        default=False if top else argparse.SUPPRESS,
        help="print every line of dbt's output (default: one summary line per build; "
        "every line goes to data/dbt_logs/)",
    )


def add_wait(parser: argparse.ArgumentParser) -> None:
    """--wait, on every command that writes (they take the home's writer lock)."""
    from apy_runway.foundation.defaults import DEFAULT_WAIT

    parser.add_argument(
        "--wait",
        type=float,
        default=DEFAULT_WAIT,
        metavar="SECONDS",
        help="wait this long for another writer of this home (its PID and command are "
        f"named) before refusing (default {DEFAULT_WAIT:g}; deploy/'s timers wait 600)",
    )


_MEMORY_SIZE = re.compile(r"^\s*\d+(\.\d+)?\s*([KMGT]i?B|%)\s*$", re.IGNORECASE)


def memory_size(value: str) -> str:
    """argparse type for DuckDB memory limits: '1GB', '512MiB', '80%'."""
    if not _MEMORY_SIZE.match(value):
        raise argparse.ArgumentTypeError(
            f"{value!r} is not a memory size: expected a number with KB/MB/GB/TB "
            f"(or KiB/MiB/GiB/TiB), or a percentage of RAM such as 80%"
        )
    return value.strip()


def percent(ratio: float) -> str:
    """A ratio as a percentage for a help string, its % escaped for argparse
    (which reads help strings as %-format templates)."""
    return f"{ratio:.0%}".replace("%", "%%")
