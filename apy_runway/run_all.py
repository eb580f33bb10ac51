"""`apy-runway run-all`: the whole pipeline on the embedded default data.

generate -> ingest -> build (dbt) -> train -> score (local S3 + the Lambda's
scheduled handler). Each step is the same code path as its own subcommand.
"""
from __future__ import annotations

import argparse

from apy_runway.console import log
from apy_runway.paths import ProjectPaths

COMMAND = "run-all"
HELP = "generate -> ingest -> build -> train -> score, on the embedded generated data"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--pools", type=int, default=None, help="pools to generate (generate's default if unset)")
    parser.add_argument("--days", type=int, default=None, help="days to generate (generate's default if unset)")
    parser.add_argument("--seed", type=int, default=None, help="generator seed")
    parser.add_argument("--input", nargs="+", default=None,
                        help="skip generation and ingest these files/folders instead (e.g. a DefiLlama export)")
    parser.add_argument("--vars", default=None, help="dbt vars for the build, as YAML")
    parser.add_argument("--skip-score", action="store_true", help="stop after training")


def stage_argvs(args: argparse.Namespace, paths: ProjectPaths) -> list[list[str]]:
    """The CLI argument lists run-all executes, in order."""
    steps: list[list[str]] = []
    if args.input:
        steps.append(["ingest", *args.input])
    else:
        generate = ["generate"]
        for flag, value in (("--pools", args.pools), ("--days", args.days), ("--seed", args.seed)):
            if value is not None:
                generate += [flag, str(value)]
        steps += [generate, ["ingest"]]
    steps.append(["build"] + (["--vars", args.vars] if args.vars else []))
    steps.append(["train"])
    if not args.skip_score:
        steps.append(["score"])
    return steps


def run(args: argparse.Namespace, paths: ProjectPaths) -> int:
    from apy_runway.cli import main as cli_main

    steps = stage_argvs(args, paths)
    for number, argv in enumerate(steps, start=1):
        log(f"run-all step {number}/{len(steps)}: apy-runway {' '.join(argv)}")
        code = cli_main(["--home", str(paths.home), *argv])
        if code:
            log(f"run-all stopped: step '{argv[0]}' exited {code}")
            return code
    log(f"run-all done: exports in {paths.exports}, model runs in {paths.runs}")
    return 0
