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

# command -> module, in pipeline order; each module owns its flags. Only the
# module of the command being run is imported (the others pull in scikit-learn,
# boto3, ... and would cost seconds of start-up on every call).
STAGES = {
    "generate": "apy_runway.generate",
    "ingest": "apy_runway.ingest",
    "fetch": "apy_runway.fetch",
    "build": "apy_runway.build",
    "train": "models_py.train",
    "publish": "apy_runway.publish",
    "score": "apy_runway.score",
    "run-all": "apy_runway.run_all",
}


def _add_home(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--home",
        default=None,
        help="project home holding data/ and runs/ (default: $APY_RUNWAY_HOME or the repo)",
    )


def chosen_command(argv: list[str]) -> str | None:
    """The stage named on the command line, if any (before full parsing)."""
    pre = argparse.ArgumentParser(add_help=False)
    _add_home(pre)
    _, rest = pre.parse_known_args(argv)
    return rest[0] if rest and rest[0] in STAGES else None


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The full parser; with `only`, just that stage's module is imported."""
    parser = argparse.ArgumentParser(
        prog="apy-runway",
        description="Predict whether DeFi pools keep their APY over the next 30 days.",
    )
    _add_home(parser)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command, module_path in STAGES.items():
        if only is not None and command != only:
            sub.add_parser(command)
            continue
        module = importlib.import_module(module_path)
        stage = sub.add_parser(command, help=module.HELP, description=module.HELP)
        module.add_arguments(stage)
        stage.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(only=chosen_command(argv))
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
