"""The warehouse commands' flags: build, check-leakage."""

from __future__ import annotations

import argparse
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from apy_runway.cli.common import Command, memory_size
from apy_runway.foundation.defaults import DBT_PROJECT_DIR

if TYPE_CHECKING:
    from apy_runway.foundation.paths import ProjectPaths

# --------------------------------------------------------------------------- build

BUILD_HELP = "dbt build: staging -> daily -> features -> labels -> training_set / latest_features"


def add_build_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--vars",
        default=None,
        help='dbt vars as YAML, e.g. "{horizon_days: 10, apy_drop_threshold: 0}"',
    )
    parser.add_argument("--select", default=None, help="dbt node selection (default: all)")
    parser.add_argument(
        "--selector",
        default=None,
        choices=["serving", "training"],
        help="a named selection from dbt_project/selectors.yml: serving = "
        "what the Lambda's features need, training = what the training "
        "set needs (default: everything). Always a full rebuild; "
        "`apy-runway refresh` is the incremental path",
    )
    parser.add_argument(
        "--memory-limit",
        default=None,
        type=memory_size,
        help="DuckDB memory limit for the build, e.g. 4GB (spills to disk beyond it; "
        "default: $APY_RUNWAY_DUCKDB_MEMORY_LIMIT or 1GB)",
    )
    parser.add_argument(
        "--command",
        dest="dbt_command",
        default="build",
        choices=["build", "run", "test", "compile", "parse"],
        help="dbt command to run (default: build = run + test)",
    )


def run_build(args: argparse.Namespace, paths: ProjectPaths) -> int:
    from apy_runway.warehouse.build import build

    build(
        paths,
        dbt_vars=args.vars,
        select=args.select,
        selector=args.selector,
        memory_limit=args.memory_limit,
        command=args.dbt_command,
    )
    return 0


BUILD = Command(BUILD_HELP, add_build_arguments, run_build)

# --------------------------------------------------------------------------- check-leakage

CHECK_LEAKAGE_HELP = (
    "build features and labels in full and cut at --cut, compare them; exit 1 on look-ahead leakage"
)


def _date(value: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a date (YYYY-MM-DD)") from None


def add_check_leakage_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--cut",
        type=_date,
        required=True,
        help="build as if the data ended this UTC day (YYYY-MM-DD)",
    )
    parser.add_argument(
        "--vars",
        default=None,
        help="dbt vars for both builds, as YAML (as_of_date is set for the cut)",
    )
    parser.add_argument(
        "--project-dir",
        type=Path,
        default=DBT_PROJECT_DIR,
        help="the dbt project to check (default: this repository's)",
    )


def run_check_leakage(args: argparse.Namespace, paths: ProjectPaths) -> int:
    from apy_runway.warehouse.leakage import check_leakage

    report = check_leakage(paths, args.cut, project_dir=args.project_dir, dbt_vars=args.vars)
    print(report.summary())
    return 0 if report.is_clean else 1


CHECK_LEAKAGE = Command(CHECK_LEAKAGE_HELP, add_check_leakage_arguments, run_check_leakage)
