"""`apy-runway refresh`'s flags: the hourly run (cli/hourly.py) with, under
--collect, collect's flags."""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from typing import TYPE_CHECKING

from apy_runway.cli.common import Command, memory_size
from apy_runway.cli.landing import add_collect_arguments, client_from_arguments
from apy_runway.cli.operations import add_allow_shrink
from apy_runway.foundation.defaults import DEFAULT_MEMORY_LIMIT
from inference import contracts

if TYPE_CHECKING:
    from apy_runway.foundation.paths import ProjectPaths

REFRESH_HELP = (
    "the hourly run: [collect] -> ingest new files -> incremental build (serving) -> "
    "export -> [publish to S3] -> one summary line"
)


def add_refresh_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--collect",
        action="store_true",
        help="first GET DefiLlama's /pools (apy-runway collect) and land this hour's snapshot",
    )
    parser.add_argument(
        "--bucket",
        default=os.environ.get(contracts.ENVIRONMENT["bucket"]),
        help="publish the latest features to this S3 bucket (default: $APY_RUNWAY_BUCKET; "
        "none: no publish)",
    )
    parser.add_argument(
        "--endpoint-url",
        default=os.environ.get(contracts.ENV_S3_ENDPOINT),
        help="S3 endpoint, e.g. a local server (default: $AWS_ENDPOINT_URL)",
    )
    parser.add_argument(
        "--full-refresh",
        action="store_true",
        help="rebuild the serving models in full instead of from the newly landed days",
    )
    parser.add_argument(
        "--memory-limit",
        default=None,
        type=memory_size,
        help="DuckDB memory limit for ingest and the build "
        f"(default {DEFAULT_MEMORY_LIMIT}; spills to disk past it)",
    )
    add_allow_shrink(parser)
    parser.add_argument(
        "--mature-labels",
        action="store_true",
        help="once a UTC day, after the publish: rebuild the labels (training selector), "
        "ledger sync from --bucket and prediction_outcomes (deploy/'s timer passes it)",
    )
    parser.add_argument(
        "--board",
        action="store_true",
        help="rebuild the runway board (apy-runway board, defaults) after the refresh",
    )
    parser.add_argument(
        "--every",
        default=None,
        type=period,
        metavar="PERIOD",
        help="keep running: refresh now, then every PERIOD (e.g. 1h, 30m), in one process "
        "that keeps dbt's parsed project between runs (a failed run is reported, the next "
        "one still runs); default: refresh once",
    )
    group = parser.add_argument_group("collect (with --collect)")
    add_collect_arguments(group)


def period(value: str) -> float:
    """argparse type: '1h', '30m', '90s' -> seconds."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([hms])\s*", value)
    if not match or float(match[1]) <= 0:
        raise argparse.ArgumentTypeError(f"{value!r} is not a period such as 1h, 30m or 90s")
    return float(match[1]) * {"h": 3600, "m": 60, "s": 1}[match[2]]


def run_refresh(args: argparse.Namespace, paths: ProjectPaths) -> int:
    if args.every is None:
        print(refresh_once(args, paths).line())
        return 0
    from apy_runway.foundation.console import UserError, log
    from apy_runway.warehouse.session import DbtSession

    session = DbtSession()
    while True:
        began = time.monotonic()
        try:
            print(refresh_once(args, paths, session).line(), flush=True)
        except UserError as error:
            print(f"apy-runway refresh: error: {error}", file=sys.stderr, flush=True)
        wait = max(0.0, args.every - (time.monotonic() - began))
        log(f"next refresh in {wait:.0f} s")
        time.sleep(wait)


def refresh_once(args: argparse.Namespace, paths: ProjectPaths, session=None):
    from apy_runway.cli.hourly import refresh

    return refresh(
        paths,
        collect_from=args.base_url if args.collect else None,
        client=client_from_arguments(args) if args.collect else None,
        backfill_max=args.backfill_max,
        bucket=args.bucket,
        endpoint_url=args.endpoint_url,
        allow_shrink=args.allow_shrink,
        full_refresh=args.full_refresh,
        memory_limit=args.memory_limit,
        board=args.board,
        session=session,
        mature_labels=args.mature_labels,
    )


REFRESH = Command(REFRESH_HELP, add_refresh_arguments, run_refresh)
