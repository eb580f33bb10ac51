"""`apy-runway build`: run `dbt build` on the DuckDB warehouse, then export the
feature-column contract beside the marts.

The feature contract is the `meta.feature_type` of the columns of the
`latest_features` mart's YAML, read from dbt's manifest: its order is the
model's feature order.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from apy_runway.foundation.console import UserError, log, memory_size
from apy_runway.foundation.dbt import dbt_target_dir, run_dbt
from apy_runway.foundation.paths import ProjectPaths
from inference import contracts

COMMAND = "build"
HELP = "dbt build: staging -> daily -> features -> labels -> training_set / latest_features"

# Column meta key in marts/_marts__models.yml that marks model features.
FEATURE_META_KEY = "feature_type"
FEATURE_TYPES = ("numeric", "categorical")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--vars",
        default=None,
        help='dbt vars as YAML, e.g. "{horizon_days: 10, apy_drop_threshold: 0}"',
    )
    parser.add_argument("--select", default=None, help="dbt node selection (default: all)")
    parser.add_argument(
        "--selector",
        default=None,
        choices=["serving", "training"],
        help="a named selection from dbt_project/selectors.yml: serving = "
        "what the Lambda's features need, training = what the training "
        "set needs (default: everything)",
    )
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
    build(
        paths,
        dbt_vars=args.vars,
        select=args.select,
        selector=args.selector,
        memory_limit=args.memory_limit,
        command=args.dbt_command,
    )
    return 0


def build(
    paths: ProjectPaths,
    dbt_vars: str | dict | None = None,
    select: str | None = None,
    selector: str | None = None,
    memory_limit: str | None = None,
    command: str = "build",
) -> dict | None:
    """Run dbt; after a build or run of the marts, write feature_columns.json
    (returned)."""
    if select and selector:
        raise UserError("--select and --selector cannot be combined")
    if command in ("build", "run") and not paths.raw_snapshots.exists():
        raise UserError(f"no raw snapshots at {paths.raw_snapshots}: run `apy-runway ingest` first")
    run_dbt(
        paths,
        command,
        dbt_vars=dbt_vars,
        select=select,
        selector=selector,
        memory_limit=memory_limit,
    )
    if command not in ("build", "run") or select is not None:
        return None
    columns = export_feature_columns(paths)
    log(
        f"wrote {paths.feature_columns} ({len(columns['numeric'])} numeric, "
        f"{len(columns['categorical'])} categorical features)"
    )
    return columns


def feature_columns_from_manifest(manifest: dict, model: str = "latest_features") -> dict:
    """The ordered feature contract declared in the mart's YAML (`meta.feature_type`)."""
    nodes = [
        node
        for node in manifest["nodes"].values()
        if node["resource_type"] == "model" and node["name"] == model
    ]
    if not nodes:
        raise UserError(f"model {model} is not in the dbt manifest")
    contract: dict[str, list[str]] = {kind: [] for kind in FEATURE_TYPES}
    for name, column in nodes[0]["columns"].items():
        kind = (column.get("meta") or {}).get(FEATURE_META_KEY) or (
            column.get("config", {}).get("meta") or {}
        ).get(FEATURE_META_KEY)
        if kind is None:
            continue
        if kind not in FEATURE_TYPES:
            raise UserError(
                f"{model}.{name}: meta {FEATURE_META_KEY}={kind!r} is not one of {FEATURE_TYPES}"
            )
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
        "key_columns": list(contracts.KEY_COLUMNS),
        "label_column": contracts.LABEL_COLUMN,
    }
    paths.feature_columns.write_text(json.dumps(payload, indent=2) + "\n")
    return payload
