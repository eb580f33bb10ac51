"""The command line answers --help fast and for every command: the registry
(apy_runway/cli/main.py COMMANDS) builds the whole parser without importing a
stage, numpy, DuckDB, dbt or scikit-learn; every help string formats (argparse
reads them as %-templates); --home goes before or after the command."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import pytest
import yaml

from apy_runway.cli import main as cli_main
from apy_runway.cli.main import COMMANDS, build_parser, description
from apy_runway.foundation.defaults import DBT_PROJECT_DIR

# What building the parser must not import (the libraries by top-level name,
# our own packages by prefix, except the light constants the flags show).
HEAVY = ("numpy", "pandas", "duckdb", "dbt", "sklearn", "scipy", "boto3", "botocore")
HEAVY += ("pyarrow", "urllib3", "yaml", "matplotlib", "joblib")
STAGES = ("apy_runway.landing", "apy_runway.warehouse", "apy_runway.operations")
STAGES += ("apy_runway.board", "apy_runway.cli.hourly", "models_py.", "inference.")
LIGHT = ("models_py.config", "inference.contracts")
FLAG_MODULES = ("common", "landing", "warehouse", "operations", "board", "run_all", "refresh")


def command_paths(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()):
    """Every (sub)command's argv prefix, read from the parser itself."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield (*prefix, name)
                yield from command_paths(sub, (*prefix, name))


ALL_COMMANDS = list(command_paths(build_parser()))


def best_of(argv: list[str], runs: int = 3) -> float:
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(argv, check=True, capture_output=True)
        best = min(best, time.perf_counter() - started)
    return best


def test_top_level_help_costs_at_most_four_bare_interpreter_starts():
    bare = best_of([sys.executable, "-c", "pass"])
    helped = best_of([sys.executable, "-m", "apy_runway.cli", "--help"])
    assert helped <= 4 * bare, f"--help {helped * 1e3:.0f} ms, python -c pass {bare * 1e3:.0f} ms"


def test_the_parser_imports_no_stage_and_no_heavy_library():
    code = (
        "import json, sys\n"
        + "".join(f"import apy_runway.cli.{name}\n" for name in FLAG_MODULES)
        + "from apy_runway.cli.main import build_parser\n"
        "build_parser().format_help()\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    loaded = json.loads(done.stdout)
    heavy = [m for m in loaded if m.split(".")[0] in HEAVY]
    stages = [m for m in loaded if m.startswith(STAGES) and m not in LIGHT]
    assert not heavy and not stages, (heavy, stages)


def test_the_registry_names_every_command():
    assert {path[0] for path in ALL_COMMANDS} == set(COMMANDS)
    assert ("ledger", "sync") in ALL_COMMANDS


@pytest.mark.parametrize("argv", [(), *ALL_COMMANDS], ids=lambda argv: " ".join(argv) or "top")
def test_help_answers_for_every_command(argv, capsys):
    with pytest.raises(SystemExit) as exited:
        cli_main([*argv, "--help"])
    assert exited.value.code == 0
    out = capsys.readouterr().out
    assert f"usage: apy-runway {' '.join(argv)}".rstrip() in out


def test_the_entry_point_answers_help():
    done = subprocess.run(
        [sys.executable, "-m", "apy_runway.cli", "collect", "--help"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert "usage: apy-runway collect" in done.stdout
    assert "fewer than 50% of the previous" in " ".join(done.stdout.split())


def test_the_description_takes_the_horizon_from_the_dbt_project():
    horizon = yaml.safe_load((DBT_PROJECT_DIR / "dbt_project.yml").read_text())["vars"][
        "horizon_days"
    ]
    assert f"over the next {horizon} days" in description()


@pytest.mark.parametrize(
    "argv",
    [
        ["--home", "{home}", "generate", "--pools", "2", "--days", "3", "--freq", "daily"],
        ["generate", "--pools", "2", "--days", "3", "--freq", "daily", "--home", "{home}"],
    ],
    ids=["before", "after"],
)
def test_home_goes_before_or_after_the_command(argv, tmp_path):
    home = tmp_path / "home"
    argv = [str(home) if a == "{home}" else a for a in argv]
    assert build_parser().parse_args(argv).home == str(home)
    assert cli_main(argv) == 0
    assert (home / "data" / "landing" / "generated_snapshots.parquet").is_file()


def test_home_after_the_command_wins_and_its_absence_keeps_the_top_one():
    parse = build_parser().parse_args
    assert parse(["--home", "a", "train", "--home", "b"]).home == "b"
    assert parse(["--home", "a", "ledger", "sync", "--from", "x"]).home == "a"
    assert parse(["ledger", "sync", "--home", "c", "--from", "x"]).home == "c"
    assert parse(["train"]).home is None


def test_every_flag_of_refresh_is_documented():
    """Every flag `refresh --help` lists is in the README or docs/operations.md
    (linked from it)."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    docs = (root / "README.md").read_text() + (root / "docs" / "operations.md").read_text()
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    flags = {
        option
        for action in sub.choices["refresh"]._actions
        for option in action.option_strings
        if option.startswith("--") and option not in ("--help", "--home")
    }
    assert len(flags) > 15
    assert sorted(f for f in flags if f not in docs) == []


@pytest.mark.parametrize("name", ["it's home", 'say "home"', "back\\slash"])
def test_a_home_with_a_quote_is_refused_in_one_line(tmp_path, capsys, name):
    home = tmp_path / name
    assert cli_main(["--home", str(home), "build"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "quote character" in err and str(home) in err


def test_a_home_with_a_space_ingests_and_builds(tmp_path):
    from apy_runway.foundation.paths import project_paths

    home = tmp_path / "a home with spaces"
    rows = tmp_path / "rows.csv"
    rows.write_text(
        "timestamp,pool,apy,tvlUsd\n2026-12-01T00:00:00Z,p1,3.5,100\n2026-12-02T00:00:00Z,p1,3.6,100\n"
    )
    assert cli_main(["--home", str(home), "ingest", str(rows)]) == 0
    assert cli_main(["--home", str(home), "build", "--command", "run"]) == 0
    assert project_paths(home).latest_features.is_file()
