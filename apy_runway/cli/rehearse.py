"""`apy-runway rehearse`'s flags: the live hourly loop for N simulated hours on a
scratch copy of the home, against a local DefiLlama stand-in and a local S3
(cli/rehearsal.py runs it)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from apy_runway.cli.common import Command

if TYPE_CHECKING:
    from apy_runway.foundation.paths import ProjectPaths

REHEARSE_HELP = (
    "rehearse the hourly loop for N simulated hours (refresh --collect, publish, the Lambda's "
    "scorer) on a copy of the home, against a local DefiLlama stand-in and a local S3"
)


def add_rehearse_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--hours", type=int, default=24, help="simulated hours to run (default 24)")
    parser.add_argument(
        "--into",
        type=Path,
        default=None,
        help="the scratch home, emptied first (default: data/rehearsal/ under the home)",
    )
    parser.add_argument(
        "--new-pools",
        type=int,
        default=2,
        help="pools that appear during the rehearsal with a /chart history (default 2)",
    )
    parser.add_argument("--seed", type=int, default=7, help="the stand-in's random seed")


def run_rehearse(args: argparse.Namespace, paths: ProjectPaths) -> int:
    from apy_runway.cli.rehearsal import rehearse

    def echo(line: str) -> None:
        print(line, flush=True)

    result = rehearse(
        paths,
        hours=args.hours,
        into=args.into,
        new_pools=args.new_pools,
        seed=args.seed,
        echo=echo,
    )
    for line in result.summary():
        echo(line)
    return 0 if result.ok else 1


REHEARSE = Command(REHEARSE_HELP, add_rehearse_arguments, run_rehearse)
