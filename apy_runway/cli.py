"""`apy-runway`: one entry point, one subcommand per pipeline stage.

Each stage lives in its own module exposing ``COMMAND``, ``HELP``,
``add_arguments(parser)`` and ``run(args, paths) -> int``; this file only wires
them together. ``run-all`` chains the stages in-process with their defaults.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
import time

from apy_runway.console import UserError, log
from apy_runway.paths import project_paths

# (module path) in pipeline order; each module owns its flags.
STAGES = [
    "apy_runway.generate",
    "apy_runway.ingest",
    "apy_runway.fetch",
    "apy_runway.build",
    "models_py.train",
    "apy_runway.publish",
    "apy_runway.score",
    "apy_runway.run_all",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="apy-runway",
        description="Predict whether DeFi pools keep their APY over the next 30 days.",
    )
    parser.add_argument(
        "--home",
        default=None,
        help="project home holding data/ and runs/ (default: $APY_RUNWAY_HOME or the repo)",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module_path in STAGES:
        module = importlib.import_module(module_path)
        stage = sub.add_parser(module.COMMAND, help=module.HELP, description=module.HELP)
        module.add_arguments(stage)
        stage.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    paths = project_paths(args.home).ensure()
    started = time.perf_counter()
    try:
        code = args._run(args, paths)
    except (UserError, FileNotFoundError, ValueError) as error:
        if os.environ.get("APY_RUNWAY_DEBUG"):
            raise
        print(f"apy-runway {args.command}: error: {error}", file=sys.stderr)
        return 2
    log(f"{args.command} finished in {time.perf_counter() - started:.1f} s")
    return code or 0


if __name__ == "__main__":
    sys.exit(main())
