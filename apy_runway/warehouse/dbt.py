"""Run dbt against one project home (used by `build`, `refresh`, training's
label exploration and `check-leakage`).

A command runs either in a subprocess (run_dbt; absolute paths in its
environment, see paths.ProjectPaths.dbt_env) or in this process through a
DbtSession (a dbtRunner that keeps its parsed manifest between builds and
re-parses only when the project's files change). Either way dbt's per-node
lines go to data/dbt_logs/ and the console gets one summary line per build
and any failure in full; `apy-runway --verbose` streams every line.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

from apy_runway.foundation import console
from apy_runway.foundation.console import UserError, log
from apy_runway.foundation.defaults import DBT_PROJECT_DIR, READER_WAIT
from apy_runway.foundation.paths import ProjectPaths
from apy_runway.warehouse.session import DbtCall, DbtSession
from inference import contracts

# how often a long subprocess build prints a progress line (seconds)
PROGRESS_EVERY = 30.0


def dbt_executable() -> str:
    candidate = Path(sys.executable).with_name("dbt")
    return str(candidate) if candidate.exists() else "dbt"


def dbt_target_dir(paths: ProjectPaths) -> Path:
    """Each project home keeps its own dbt target (manifest, compiled SQL), so
    builds of different homes never overwrite each other's artefacts."""
    return paths.data / "dbt_target"


def dbt_log_dir(paths: ProjectPaths) -> Path:
    """dbt.log (dbt's own debug log) and <command>.log (the console lines of
    the last subprocess run of each command)."""
    return paths.data / "dbt_logs"


def dbt_call(
    paths: ProjectPaths,
    command: str = "build",
    dbt_vars: str | dict | None = None,
    select: str | None = None,
    extra_args: list[str] | None = None,
    target_path: Path | None = None,
    memory_limit: str | None = None,
    selector: str | None = None,
    project_dir: Path = DBT_PROJECT_DIR,
    warehouse: Path | None = None,
    full_refresh: bool = False,
    refresh_from_date: str | None = None,
    refresh_scope: Path | None = None,
) -> DbtCall:
    """The arguments and environment of one dbt command on this home.
    `refresh_from_date` and `refresh_scope` (a parquet file of the pools to
    rebuild, each from its own day) travel in the environment (read by dbt at
    execution, macros/incremental.sql): the parsed project stays valid."""
    paths.ensure()
    args = [
        command,
        "--project-dir",
        str(project_dir),
        "--profiles-dir",
        os.environ.get("DBT_PROFILES_DIR", paths.dbt_env()["DBT_PROFILES_DIR"]),
    ]
    if dbt_vars:
        args += ["--vars", dbt_vars if isinstance(dbt_vars, str) else json.dumps(dbt_vars)]
    if select:
        # cautious: a singular test that also reads an unselected model is not run
        args += ["--select", select, "--indirect-selection", "cautious"]
    if selector:
        args += ["--selector", selector]
    if full_refresh:
        args += ["--full-refresh"]
    args += ["--target-path", str(target_path or dbt_target_dir(paths))]
    args += extra_args or []
    env = {**paths.dbt_env(), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    env[contracts.ENV_REFRESH_FROM_DATE] = refresh_from_date or ""
    env[contracts.ENV_REFRESH_SCOPE] = str(refresh_scope) if refresh_scope else ""
    if warehouse is not None:
        env[contracts.ENV_DUCKDB_PATH] = str(warehouse)
    if memory_limit:
        env[contracts.ENV_DUCKDB_MEMORY_LIMIT] = memory_limit
    # dbt writes its logs under the project dir unless told otherwise
    env["DBT_LOG_PATH"] = os.environ.get("DBT_LOG_PATH", str(dbt_log_dir(paths)))
    return DbtCall(args, env, command)


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
    refresh_from_date: str | None = None,
    refresh_scope: Path | None = None,
    session: DbtSession | None = None,
    reader_wait: float = READER_WAIT,
) -> subprocess.CompletedProcess:
    """Run one dbt command against this project home; raise UserError on failure.

    `project_dir` and `warehouse` (default: the home's) serve the leakage check,
    which builds a second warehouse from the same raw snapshots. `full_refresh`
    rebuilds the incremental models from scratch (dbt --full-refresh). With
    `session`, dbt runs in this process on the session's parsed manifest.
    `quiet` captures dbt's output (returned; its tail in the error); otherwise
    the console gets a summary line (every line with console.verbose). First
    it waits up to `reader_wait` seconds for readers of the warehouse."""
    call = dbt_call(
        paths,
        command,
        dbt_vars=dbt_vars,
        select=select,
        extra_args=extra_args,
        target_path=target_path,
        memory_limit=memory_limit,
        selector=selector,
        project_dir=project_dir,
        warehouse=warehouse,
        full_refresh=full_refresh,
        refresh_from_date=refresh_from_date,
        refresh_scope=refresh_scope,
    )
    wait_for_readers(Path(call.env[contracts.ENV_DUCKDB_PATH]), reader_wait)
    if not quiet:
        log("dbt " + (" ".join(call.args) if console.verbose else command))
    if session is not None:
        # an incremental build of a warm session (the hourly refresh) skips dbt's
        # JSON artifacts and its debug file log; a full build writes them
        return session.invoke(call, quiet=quiet, light=bool(refresh_from_date))
    argv = [dbt_executable(), *(["--no-use-colors"] if quiet else []), *call.args]
    env = {**os.environ, **call.env}
    if console.verbose and not quiet:
        result = subprocess.run(argv, cwd=project_dir, env=env, text=True)
        if result.returncode != 0:
            raise UserError(f"dbt {command} failed (exit {result.returncode})")
        return result
    if quiet:
        result = subprocess.run(argv, cwd=project_dir, env=env, text=True, capture_output=True)
        if result.returncode != 0:
            detail = "\n" + (result.stdout or "")[-4000:]
            raise UserError(f"dbt {command} failed (exit {result.returncode}){detail}")
        return result
    return _run_summarized(argv, call, project_dir, env)


# DuckDB's refusal to open a file another process holds
_CONFLICT = re.compile(r"Conflicting lock is held in (.*?) \(PID (\d+)\)")


def wait_for_readers(warehouse: Path, seconds: float) -> None:
    """Wait until the warehouse can be opened read-write. A reader (board,
    show, score) opens it read-only, which holds a shared lock that dbt's
    read-write open would fail on; readers are short, so wait up to `seconds`
    for them, then refuse naming the reader's PID. (A reader that opens in
    the moment between this check and dbt's own open still fails that build.)"""
    import duckdb

    if not warehouse.is_file():
        return
    deadline = time.monotonic() + max(0.0, seconds)
    announced = False
    while True:
        try:
            duckdb.connect(str(warehouse)).close()
            return
        except duckdb.IOException as error:
            held = _CONFLICT.search(str(error))
            if held is None:
                raise
            reader = f"PID {held.group(2)} ({held.group(1)})"
        if time.monotonic() >= deadline:
            raise UserError(
                f"{warehouse} is held open by {reader} (a reader such as `board`, `show` or "
                f"`score`, or another DuckDB client) after waiting {seconds:g} s: dbt cannot "
                "write it; close that process and run again"
            )
        if not announced:
            log(f"the warehouse is open in {reader}: waiting up to {seconds:g} s for it to close")
            announced = True
        time.sleep(0.2)


def _run_summarized(
    argv: list[str], call: DbtCall, project_dir: Path, env: dict[str, str]
) -> subprocess.CompletedProcess:
    """Run dbt with its lines going to <log dir>/<command>.log; print a
    progress line every PROGRESS_EVERY seconds, a summary at the end, and on
    failure dbt's own account of the failing nodes."""
    log_file = Path(call.env["DBT_LOG_PATH"]) / f"{call.command}.log"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    started = last = time.perf_counter()
    done = 0
    lines: list[str] = []
    argv = [argv[0], "--no-use-colors", *argv[1:]]
    with log_file.open("w") as out:
        process = subprocess.Popen(
            argv, cwd=project_dir, env=env, text=True, stdout=subprocess.PIPE, stderr=out
        )
        assert process.stdout is not None
        for line in process.stdout:
            out.write(line)
            lines.append(line.rstrip("\n"))
            if _NODE_DONE.search(line):
                done += 1
            if time.perf_counter() - last >= PROGRESS_EVERY:
                last = time.perf_counter()
                log(f"dbt {call.command}: {done} node(s) done ({last - started:.0f} s)")
        code = process.wait()
    seconds = time.perf_counter() - started
    if code != 0:
        raise UserError(
            f"dbt {call.command} failed (exit {code}) after {seconds:.0f} s\n"
            + _failure_text(lines)
            + f"\nevery line: {log_file}"
        )
    log(_summary_text(call.command, lines, seconds, log_file))
    return subprocess.CompletedProcess(argv, code, "\n".join(lines), "")


# "12 of 130 OK created sql table model ...", "... PASS ...", "... ERROR ..."
_NODE_DONE = re.compile(r"^\S*\s*\d+ of \d+ (OK|PASS|WARN|ERROR|FAIL|SKIP|NO-OP)\b")
_DONE = re.compile(r"Done\. (PASS=\d+ WARN=\d+ ERROR=\d+ SKIP=\d+)(?: NO-OP=\d+)? TOTAL=(\d+)")
_FINISHED = re.compile(r"Finished running (.*) in \d+ hours")


def _summary_text(command: str, lines: list[str], seconds: float, log_file: Path) -> str:
    """One line: what ran (dbt's "Finished running ..."), the outcome counts."""
    ran = next((m.group(1) for line in lines if (m := _FINISHED.search(line))), None)
    done = next((m for line in reversed(lines) if (m := _DONE.search(line))), None)
    what = f"{ran}; " if ran else ""
    counts = f"{done.group(1)}; " if done else ""
    return f"dbt {command} ok: {what}{counts}{seconds:.1f} s (every node: {log_file})"


def _failure_text(lines: list[str]) -> str:
    """dbt's closing account of the failures (from "Completed with"), or the
    last 40 lines."""
    start = next((i for i in range(len(lines) - 1, -1, -1) if "Completed with" in lines[i]), None)
    chosen = lines[start:] if start is not None else lines[-40:]
    return "\n".join(re.sub(r"^\S*\d\d:\d\d:\d\d\s+", "", line) for line in chosen)
