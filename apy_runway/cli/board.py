"""The board command's flags."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from apy_runway.cli.common import Command
from apy_runway.foundation import defaults

if TYPE_CHECKING:
    from apy_runway.foundation.paths import ProjectPaths

BOARD_HELP = "write the runway board: a static HTML site (pool table, pool pages, track record)"


def add_board_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out", type=Path, default=None, help="site folder (default: data/board/, replaced whole)"
    )
    parser.add_argument(
        "--predictions",
        type=Path,
        default=None,
        help="hourly predictions document (default: data/exports/predictions_latest.json)",
    )
    parser.add_argument(
        "--run",
        default="latest",
        help="training run whose backtest_predictions.parquet is the backtest track record: "
        "folder, run id or 'latest' (default); 'none' for no track record",
    )
    parser.add_argument(
        "--monitoring",
        type=Path,
        default=None,
        help="folder of monitoring/<hour>.json health documents (default: data/monitoring/)",
    )
    parser.add_argument(
        "--history-days",
        type=int,
        default=defaults.DEFAULT_HISTORY_DAYS,
        help=f"days of APY / TVL history per pool page (default: {defaults.DEFAULT_HISTORY_DAYS})",
    )
    parser.add_argument(
        "--pools-per-shard",
        type=int,
        default=defaults.DEFAULT_POOLS_PER_SHARD,
        help="pools per data/pools/<shard>.js file a pool page loads "
        f"(default: {defaults.DEFAULT_POOLS_PER_SHARD})",
    )
    parser.add_argument(
        "--served-per-pool",
        type=int,
        default=defaults.DEFAULT_SERVED_PER_POOL,
        help="newest served / backtest predictions kept per pool page "
        f"(default: {defaults.DEFAULT_SERVED_PER_POOL})",
    )


def run_board(args: argparse.Namespace, paths: ProjectPaths) -> int:
    from apy_runway.board.build import build_board

    built = build_board(
        paths,
        out=args.out,
        predictions=args.predictions,
        run=None if args.run == "none" else args.run,
        monitoring=args.monitoring,
        history_days=args.history_days,
        pools_per_shard=args.pools_per_shard,
        served_per_pool=args.served_per_pool,
    )
    print(built.describe())
    return 0


BOARD = Command(BOARD_HELP, add_board_arguments, run_board)
