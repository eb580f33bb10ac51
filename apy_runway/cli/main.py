"""`apy-runway`: one entry point, one subcommand per pipeline stage.

The top floor. COMMANDS is the registry: each command's help line, the
function adding its flags and its run function (args, paths) -> exit code,
from the flag modules beside this one. Building the whole parser imports no
stage: a run function imports its stage when it runs, so `apy-runway --help`
and `apy-runway <command> --help` answer without numpy, DuckDB, dbt or
scikit-learn (tests/test_cli_help.py times it).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time

from apy_runway.cli import board, landing, operations, refresh, rehearse, run_all, warehouse
from apy_runway.cli.common import Command, add_home, add_wait
from inference import contracts

# command -> its Command, in pipeline order
COMMANDS: dict[str, Command] = {
    "generate": landing.GENERATE,
    "ingest": landing.INGEST,
    "fetch": landing.FETCH,
    "collect": landing.COLLECT,
    "build": warehouse.BUILD,
    "train": operations.TRAIN,
    "retrain": operations.RETRAIN,
    "promote": operations.PROMOTE,
    "publish": operations.PUBLISH,
    "score": operations.SCORE,
    "show": operations.SHOW,
    "watch": operations.WATCH,
    "refresh": refresh.REFRESH,
    "rehearse": rehearse.REHEARSE,
    "check-leakage": warehouse.CHECK_LEAKAGE,
    "ledger": operations.LEDGER,
    "backtest": operations.BACKTEST,
    "board": board.BOARD,
    "run-all": run_all.RUN_ALL,
}


# the commands that write the raw store, data/landing/ or the warehouse: each
# runs under the home's writer lock (foundation/lock.py) and takes --wait
WRITERS = frozenset(
    {"generate", "ingest", "fetch", "collect", "build", "refresh", "ledger", "backtest", "run-all"}
)
# commands that take the lock only for their build (training itself runs unlocked)
BUILDERS = frozenset({"train", "retrain"})


def dbt_project_var(name: str) -> str | None:
    """The default of a dbt var, read from dbt_project.yml's `vars:` block as
    text (a `name: value` line; no YAML library, which would cost start-up)."""
    from apy_runway.foundation.defaults import DBT_PROJECT_DIR

    try:
        text = (DBT_PROJECT_DIR / "dbt_project.yml").read_text()
    except OSError:
        return None
    block = re.search(r"^vars:\n((?:[ \t]+.*\n|[ \t]*\n)*)", text, re.MULTILINE)
    found = block and re.search(rf"^[ \t]+{re.escape(name)}:[ \t]*([^#\s]+)", block[1], re.M)
    return found[1] if found else None


def description() -> str:
    horizon = dbt_project_var("horizon_days")
    window = f"the next {horizon} days" if horizon else "the label horizon"
    return f"Predict whether DeFi pools keep their APY over {window} (dbt var horizon_days)."


def build_parser() -> argparse.ArgumentParser:
    """The whole parser: every command with its flags (no stage is imported)."""
    parser = argparse.ArgumentParser(prog="apy-runway", description=description())
    add_home(parser, top=True)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, command in COMMANDS.items():
        stage = sub.add_parser(name, help=command.help, description=command.help)
        add_home(stage)
        command.add_arguments(stage)
        if name in WRITERS | BUILDERS and name != "ledger":  # ledger's is on `ledger sync`
            add_wait(stage)
        stage.set_defaults(_run=command.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    from apy_runway.foundation import console
    from apy_runway.foundation.console import UserError, log, show_progress_of
    from apy_runway.foundation.paths import project_paths

    console.verbose = bool(args.verbose)

    show_progress_of("models_py")
    started = time.perf_counter()
    try:
        paths = project_paths(args.home).ensure()
        if args.command in WRITERS | BUILDERS:
            from apy_runway.foundation.lock import set_default_wait, writer_lock

            set_default_wait(args.wait)
        if args.command in WRITERS:
            with writer_lock(paths.writer_lock, f"apy-runway {args.command}", args.wait):
                code = args._run(args, paths)
        else:
            code = args._run(args, paths)
    except (UserError, FileNotFoundError, ValueError) as error:
        if os.environ.get(contracts.ENV_DEBUG):
            raise
        print(f"apy-runway {args.command}: error: {error}", file=sys.stderr)
        return 2
    log(f"{args.command} finished in {time.perf_counter() - started:.1f} s")
    return code or 0


if __name__ == "__main__":
    sys.exit(main())
