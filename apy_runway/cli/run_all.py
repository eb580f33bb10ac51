"""`apy-runway run-all`: the whole pipeline on the embedded default data.

generate -> ingest (a new raw store: --replace) -> build (dbt, in full) ->
train -> score (local S3 + the Lambda's hourly core; its ledger file and
health document land in data/) -> backtest (the monthly backtest replayed
into the ledger, prediction_outcomes rebuilt) -> board (the static runway
board with the ledger's track record; its path is printed last). Each step
calls the same function as its own subcommand.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from apy_runway.cli.common import Command

if TYPE_CHECKING:
    from apy_runway.foundation.paths import ProjectPaths

RUN_ALL_HELP = (
    "generate -> ingest -> build -> train -> score -> backtest -> board, "
    "on the embedded generated data"
)


def add_run_all_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--pools", type=int, default=None, help="pools to generate (generate's default if unset)"
    )
    parser.add_argument(
        "--days", type=int, default=None, help="days to generate (generate's default if unset)"
    )
    parser.add_argument("--seed", type=int, default=None, help="generator seed")
    parser.add_argument(
        "--input",
        nargs="+",
        default=None,
        type=Path,
        help="skip generation and ingest these files/folders instead (e.g. a DefiLlama export)",
    )
    parser.add_argument("--vars", default=None, help="dbt vars for the build, as YAML")
    parser.add_argument(
        "--skip-score", action="store_true", help="do not score (nor draw the board)"
    )
    parser.add_argument("--skip-board", action="store_true", help="do not write the runway board")


def run_all(args: argparse.Namespace, paths: ProjectPaths) -> int:
    from apy_runway.board import build as board
    from apy_runway.foundation.console import log
    from apy_runway.landing import generate, ingest
    from apy_runway.operations import backtest, score, train
    from apy_runway.warehouse import build

    steps = ["ingest", "build", "train"] + ([] if args.skip_score else ["score", "backtest"])
    if not (args.skip_score or args.skip_board):
        steps.append("board")
    if not args.input:
        steps.insert(0, "generate")

    def step(name: str) -> None:
        log(f"run-all step {steps.index(name) + 1}/{len(steps)}: {name}")

    if not args.input:
        step("generate")
        chosen = {
            key: value
            for key, value in (("n_pools", args.pools), ("n_days", args.days), ("seed", args.seed))
            if value is not None
        }
        generate.generate_snapshots(paths.generated_snapshots, **chosen)
    step("ingest")
    # a fresh raw store of exactly these inputs (an earlier one is moved aside)
    ingest.ingest(args.input or [paths.generated_snapshots], paths, replace=True)
    step("build")
    build.build(paths, dbt_vars=args.vars)
    step("train")
    train.train(paths)
    if not args.skip_score:
        step("score")
        print(score.render_report(score.score_locally(paths), top=10))
        step("backtest")
        backtest.replay(paths)
    if "board" in steps:
        step("board")
        built = board.build_board(paths)
    log(f"run-all done: exports in {paths.exports}, model runs in {paths.runs}")
    if "board" in steps:
        print(f"\nrunway board ({built.pools} pools): {built.index}")
        print(f"  open {built.index.as_uri()} in a browser (no server needed)")
    return 0


RUN_ALL = Command(RUN_ALL_HELP, add_run_all_arguments, run_all)
