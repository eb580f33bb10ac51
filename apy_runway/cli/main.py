"""`apy-runway`: one entry point, one subcommand per pipeline stage.

The top floor: it wires the stages and imports each one inside the function
that names it, with a plain `from ... import ...`, so only the chosen command's
module is imported (the others pull in scikit-learn, boto3, dbt and would cost
seconds of start-up on every call). Each stage module exposes ``HELP``,
``add_arguments(parser)`` and ``run(args, paths) -> int``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from types import ModuleType

from apy_runway.foundation.console import UserError, log, show_progress_of
from apy_runway.foundation.paths import project_paths


def _generate() -> ModuleType:
    from apy_runway.landing import generate

    return generate


def _ingest() -> ModuleType:
    from apy_runway.landing import ingest

    return ingest


def _fetch() -> ModuleType:
    from apy_runway.landing import fetch

    return fetch


def _collect() -> ModuleType:
    from apy_runway.landing import collect

    return collect


def _build() -> ModuleType:
    from apy_runway.warehouse import build

    return build


def _train() -> ModuleType:
    from apy_runway.operations import train_command as train

    return train


def _retrain() -> ModuleType:
    from apy_runway.operations import retrain

    return retrain


def _promote() -> ModuleType:
    from apy_runway.operations import promote

    return promote


def _publish() -> ModuleType:
    from apy_runway.operations import publish

    return publish


def _score() -> ModuleType:
    from apy_runway.operations import score

    return score


def _refresh() -> ModuleType:
    from apy_runway.cli import refresh

    return refresh


def _check_leakage() -> ModuleType:
    from apy_runway.warehouse import leakage

    return leakage


def _board() -> ModuleType:
    from apy_runway.board import build as board

    return board


def _ledger() -> ModuleType:
    from apy_runway.operations import ledger

    return ledger


def _backtest() -> ModuleType:
    from apy_runway.operations import backtest

    return backtest


def _run_all() -> ModuleType:
    from apy_runway.cli import run_all

    return run_all


# command -> the function importing its module, in pipeline order
COMMANDS: dict[str, Callable[[], ModuleType]] = {
    "generate": _generate,
    "ingest": _ingest,
    "fetch": _fetch,
    "collect": _collect,
    "build": _build,
    "train": _train,
    "retrain": _retrain,
    "promote": _promote,
    "publish": _publish,
    "score": _score,
    "refresh": _refresh,
    "check-leakage": _check_leakage,
    "ledger": _ledger,
    "backtest": _backtest,
    "board": _board,
    "run-all": _run_all,
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
    return rest[0] if rest and rest[0] in COMMANDS else None


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The full parser; with `only`, just that stage's module is imported."""
    parser = argparse.ArgumentParser(
        prog="apy-runway",
        description="Predict whether DeFi pools keep their APY over the next 30 days.",
    )
    _add_home(parser)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command, load in COMMANDS.items():
        if only is not None and command != only:
            sub.add_parser(command)
            continue
        module = load()
        stage = sub.add_parser(command, help=module.HELP, description=module.HELP)
        module.add_arguments(stage)
        stage.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser(only=chosen_command(argv))
    args = parser.parse_args(argv)
    show_progress_of("models_py")
    started = time.perf_counter()
    try:
        paths = project_paths(args.home).ensure()
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
