"""`apy-runway build`: run `dbt build` on the DuckDB warehouse, then export the
feature-column contract beside the marts.

dbt runs in a subprocess with absolute paths in its environment (see
paths.ProjectPaths.dbt_env) so its progress lines stream to the terminal.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from apy_runway.console import UserError, log, memory_size
from apy_runway.paths import DBT_PROJECT_DIR, ProjectPaths

COMMAND = "build"
HELP = "dbt build: staging -> daily -> features -> labels -> training_set / latest_features"

# Column meta key in marts/_marts__models.yml that marks model features.
FEATURE_META_KEY = "feature_type"
FEATURE_TYPES = ("numeric", "categorical")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--vars",
        default=None,
        help="dbt vars as YAML, e.g. \"{horizon_days: 10, apy_drop_threshold: 0}\"",
    )
    parser.add_argument("--select", default=None, help="dbt node selection (default: all)")
    parser.add_argument(
        "--memory-limit",
        default=None,
        type=memory_size,
        help="DuckDB memory limit for the build, e.g. 1GB (spills to disk beyond it; "
             "default: $APY_RUNWAY_DUCKDB_MEMORY_LIMIT or 80%% of RAM)",
    )
    parser.add_argument(
        "--command",
        dest="dbt_command",
        default="build",
        choices=["build", "run", "test", "compile", "parse"],
        help="dbt command to run (default: build = run + test)",
    )


def run(args: argparse.Namespace, paths: ProjectPaths) -> int:
    if args.dbt_command in ("build", "run") and not paths.raw_snapshots.exists():
        raise UserError(
            f"no raw snapshots at {paths.raw_snapshots}: run `apy-runway ingest` first"
        )
    run_dbt(paths, args.dbt_command, dbt_vars=args.vars, select=args.select,
            memory_limit=args.memory_limit)
    if args.dbt_command in ("build", "run") and args.select is None:
        columns = export_feature_columns(paths)
        log(f"wrote {paths.feature_columns} ({len(columns['numeric'])} numeric, "
            f"{len(columns['categorical'])} categorical features)")
    return 0


def dbt_executable() -> str:
    candidate = Path(sys.executable).with_name("dbt")
    return str(candidate) if candidate.exists() else "dbt"


def run_dbt(
    paths: ProjectPaths,
    command: str = "build",
    dbt_vars: str | dict | None = None,
    select: str | None = None,
    extra_args: list[str] | None = None,
    target_path: Path | None = None,
    quiet: bool = False,
    memory_limit: str | None = None,
) -> subprocess.CompletedProcess:
    """Run one dbt command against this project home; raise UserError on failure."""
    paths.ensure()
    argv = [dbt_executable(), *(["--no-use-colors"] if quiet else []), command,
            "--project-dir", str(DBT_PROJECT_DIR),
            "--profiles-dir", os.environ.get("DBT_PROFILES_DIR", paths.dbt_env()["DBT_PROFILES_DIR"])]
    if dbt_vars:
        argv += ["--vars", dbt_vars if isinstance(dbt_vars, str) else json.dumps(dbt_vars)]
    if select:
        # cautious: a singular test that also reads an unselected model is not run
        argv += ["--select", select, "--indirect-selection", "cautious"]
    # each project home keeps its own dbt target (manifest, compiled SQL), so
    # builds of different homes never overwrite each other's artefacts
    argv += ["--target-path", str(target_path or dbt_target_dir(paths))]
    argv += extra_args or []
    env = {**os.environ, **paths.dbt_env(), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    if memory_limit:
        env["APY_RUNWAY_DUCKDB_MEMORY_LIMIT"] = memory_limit
    # dbt writes its logs under the project dir unless told otherwise
    env.setdefault("DBT_LOG_PATH", str(paths.data / "dbt_logs"))
    log(f"dbt {command} ({' '.join(argv[2:])})")
    result = subprocess.run(
        argv, cwd=DBT_PROJECT_DIR, env=env, text=True,
        capture_output=quiet,
    )
    if result.returncode != 0:
        detail = ""
        if quiet:
            detail = "\n" + (result.stdout or "")[-4000:]
        raise UserError(f"dbt {command} failed (exit {result.returncode}){detail}")
    return result


def dbt_target_dir(paths: ProjectPaths) -> Path:
    return paths.data / "dbt_target"


def feature_columns_from_manifest(manifest: dict, model: str = "latest_features") -> dict:
    """The ordered feature contract declared in the mart's YAML (`meta.feature_type`)."""
    nodes = [
        node for node in manifest["nodes"].values()
        if node["resource_type"] == "model" and node["name"] == model
    ]
    if not nodes:
        raise UserError(f"model {model} is not in the dbt manifest")
    contract: dict[str, list[str]] = {kind: [] for kind in FEATURE_TYPES}
    for name, column in nodes[0]["columns"].items():
        kind = (column.get("meta") or {}).get(FEATURE_META_KEY) or (
            column.get("config", {}).get("meta") or {}).get(FEATURE_META_KEY)
        if kind is None:
            continue
        if kind not in FEATURE_TYPES:
            raise UserError(f"{model}.{name}: meta {FEATURE_META_KEY}={kind!r} "
                            f"is not one of {FEATURE_TYPES}")
        contract[kind].append(name)
    return contract


def export_feature_columns(paths: ProjectPaths, target_dir: Path | None = None) -> dict:
    """Write data/exports/feature_columns.json from dbt's manifest."""
    manifest_path = (target_dir or dbt_target_dir(paths)) / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    contract = feature_columns_from_manifest(manifest)
    payload = {
        "numeric": contract["numeric"],
        "categorical": contract["categorical"],
        "features": contract["numeric"] + contract["categorical"],
        "key_columns": ["pool_id", "snapshot_date"],
        "label_column": "is_apy_kept",
    }
    paths.feature_columns.write_text(json.dumps(payload, indent=2) + "\n")
    return payload
