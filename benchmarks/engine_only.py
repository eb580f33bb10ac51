"""Engine-only timing: the dbt project's compiled SQL run directly in DuckDB.

Reads the manifest of a finished `apy-runway build` in HOME and executes every
model's compiled SQL in dependency order in a fresh DuckDB file, without dbt's
start-up, parsing, tests or adapter overhead. Exports (external models) become
plain tables here, so the parquet writes of the marts are not included.

    python -m benchmarks.engine_only HOME
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from graphlib import TopologicalSorter
from pathlib import Path

import duckdb

from apy_runway.foundation.paths import project_paths
from apy_runway.warehouse.dbt import dbt_target_dir


def model_order(manifest: dict) -> list[dict]:
    models = {
        key: node for key, node in manifest["nodes"].items() if node["resource_type"] == "model"
    }
    graph = {
        key: [dep for dep in node["depends_on"]["nodes"] if dep in models]
        for key, node in models.items()
    }
    return [models[key] for key in TopologicalSorter(graph).static_order()]


def run_models(
    manifest: dict, database: Path, threads: int = 2, per_model: dict[str, float] | None = None
) -> tuple[float, int]:
    """Create every model of the manifest in `database`; (seconds, models).

    per_model, if given, receives each model's seconds."""
    # same database name as the warehouse, so compiled relation names resolve
    con = duckdb.connect(str(database))
    try:
        con.execute(f"set TimeZone = 'UTC'; set threads = {threads}")
        order = model_order(manifest)
        started = time.perf_counter()
        for node in order:
            kind = "view" if node["config"]["materialized"] == "view" else "table"
            step = time.perf_counter()
            con.execute(
                f"create or replace {kind} {node['relation_name']} as ({node['compiled_code']})"
            )
            if per_model is not None:
                per_model[node["name"]] = round(time.perf_counter() - step, 2)
        return time.perf_counter() - started, len(order)
    finally:
        con.close()


def main(argv: list[str]) -> int:
    paths = project_paths(argv[0])
    manifest = json.loads((dbt_target_dir(paths) / "manifest.json").read_text())
    with tempfile.TemporaryDirectory(dir=paths.data) as scratch:
        per_model: dict[str, float] = {}
        elapsed, models = run_models(
            manifest, Path(scratch) / paths.warehouse.name, per_model=per_model
        )
    print(
        json.dumps(
            {
                "engine_s": round(elapsed, 2),
                "models": models,
                "per_model_s": dict(sorted(per_model.items(), key=lambda kv: -kv[1])),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
