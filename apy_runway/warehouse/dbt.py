"""Run dbt against one project home (used by `build`, training's label
exploration and `check-leakage`).

dbt runs in a subprocess with absolute paths in its environment (see
paths.ProjectPaths.dbt_env) so its progress lines stream to the terminal.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from apy_runway.foundation.console import UserError, log
from apy_runway.foundation.defaults import DBT_PROJECT_DIR
from apy_runway.foundation.paths import ProjectPaths
from inference import contracts


def dbt_executable() -> str:
    candidate = Path(sys.executable).with_name("dbt")
    return str(candidate) if candidate.exists() else "dbt"


def dbt_target_dir(paths: ProjectPaths) -> Path:
    """Each project home keeps its own dbt target (manifest, compiled SQL), so
    builds of different homes never overwrite each other's artefacts."""
    return paths.data / "dbt_target"


def run_dbt(
    paths: ProjectPaths,
    command: str = "build",
    dbt_vars: str | dict | None = None,
    select: str | None = None,
    extra_args: list[str] | None = None,
    target_path: Path | None = None,
    quiet: bool = False,
    memory_limit: str | None = None,
    selector: str | None = None,
    project_dir: Path = DBT_PROJECT_DIR,
    warehouse: Path | None = None,
    full_refresh: bool = False,
) -> subprocess.CompletedProcess:
    """Run one dbt command against this project home; raise UserError on failure.

    `project_dir` and `warehouse` (default: the home's) serve the leakage check,
    which builds a second warehouse from the same raw snapshots. `full_refresh`
    rebuilds the incremental models from scratch (dbt --full-refresh)."""
    paths.ensure()
    argv = [
        dbt_executable(),
        *(["--no-use-colors"] if quiet else []),
        command,
        "--project-dir",
        str(project_dir),
        "--profiles-dir",
        os.environ.get("DBT_PROFILES_DIR", paths.dbt_env()["DBT_PROFILES_DIR"]),
    ]
    if dbt_vars:
        argv += ["--vars", dbt_vars if isinstance(dbt_vars, str) else json.dumps(dbt_vars)]
    if select:
        # cautious: a singular test that also reads an unselected model is not run
        argv += ["--select", select, "--indirect-selection", "cautious"]
    if selector:
        argv += ["--selector", selector]
    if full_refresh:
        argv += ["--full-refresh"]
    argv += ["--target-path", str(target_path or dbt_target_dir(paths))]
    argv += extra_args or []
    env = {**os.environ, **paths.dbt_env(), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    if warehouse is not None:
        env[contracts.ENV_DUCKDB_PATH] = str(warehouse)
    if memory_limit:
        env[contracts.ENV_DUCKDB_MEMORY_LIMIT] = memory_limit
    # dbt writes its logs under the project dir unless told otherwise
    env.setdefault("DBT_LOG_PATH", str(paths.data / "dbt_logs"))
    log(f"dbt {command} ({' '.join(argv[2:])})")
    result = subprocess.run(
        argv,
        cwd=project_dir,
        env=env,
        text=True,
        capture_output=quiet,
    )
    if result.returncode != 0:
        detail = ""
        if quiet:
            detail = "\n" + (result.stdout or "")[-4000:]
        raise UserError(f"dbt {command} failed (exit {result.returncode}){detail}")
    return result
