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
import os
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from apy_runway.cli.common import Command
from apy_runway.foundation.defaults import REPO_ROOT

if TYPE_CHECKING:
    from apy_runway.board.build import BuiltBoard
    from apy_runway.foundation.paths import ProjectPaths

# pools shown at each end of the score table run-all prints (`score --top` for more)
RUN_ALL_TOP = 5

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
    # /chart folders take the pools.json saved beside them (fetch's layout)
    pools_json = next(
        (p / "pools.json" for p in args.input or [] if (p / "pools.json").is_file()), None
    )
    if args.input and pools_json is None:
        log("run-all: no pools.json beside the inputs: /chart rows land with null chain/project")
    ingest.ingest(
        args.input or [paths.generated_snapshots],
        paths,
        replace=True,
        pools_json=pools_json,
        no_pool_metadata=pools_json is None,
    )
    step("build")
    build.build(paths, dbt_vars=args.vars)
    step("train")
    run_dir = train.train(paths)
    published = None
    if not args.skip_score:
        step("score")
        published = score.score_locally(paths)
        print(score.render_report(published, top=RUN_ALL_TOP))
        step("backtest")
        backtest.replay(paths)
    built = None
    if "board" in steps:
        step("board")
        built = board.build_board(paths)
    print(next_steps(paths, run_dir, built, published, from_input=bool(args.input)))
    return 0


def _program() -> str:
    """How this command was called (.venv/bin/apy-runway from the repo), for
    commands to copy; plain apy-runway when run another way (tests)."""
    called = sys.argv[0] if sys.argv else ""
    if os.path.basename(called) != "apy-runway":
        return "apy-runway"
    relative = os.path.relpath(called)
    return shlex.quote(relative if not relative.startswith("..") else called)


def next_steps(
    paths: ProjectPaths,
    run_dir: Path,
    built: BuiltBoard | None,
    published: dict | None,
    from_input: bool,
) -> str:
    """What to look at after a run, and how to run on your own data."""
    cli = _program() + (
        "" if paths.home == REPO_ROOT else f" --home {shlex.quote(str(paths.home))}"
    )
    report = run_dir / "report.md"
    lines = ["", "Next:"]
    if report.is_file():
        lines.append(f"  the model's report   {report}")
    if built is not None:
        lines.append(f"  the runway board     {built.index.as_uri()}  (open it; no server needed)")
    scored = [p for p in (published or {}).get("predictions", []) if p.get("p_keep") is not None]
    if scored:
        pool = min(scored, key=lambda p: p["p_keep"])["pool_id"]
        lines.append(f"  one pool's call      {cli} show {pool[:13]}")
    if not from_input:
        lines += [
            "  your own DefiLlama data (a /chart export, CSV or parquet; docs/data.md):",
            f"      {_program()} --home ~/my-pools run-all --input <file-or-folder>",
            f"    or from the API: {_program()} fetch --max-pools 200, then ingest, train, score",
        ]
    return "\n".join(lines)


RUN_ALL = Command(RUN_ALL_HELP, add_run_all_arguments, run_all)
