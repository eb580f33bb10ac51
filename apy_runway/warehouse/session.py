"""DbtSession: dbt in this process, keeping its parsed manifest between builds.

A long-lived refresh (`apy-runway refresh --every 1h`) and tests that build
repeatedly pass one to run_dbt / incremental_build: the first build parses,
later ones reuse the manifest, and a change to any file of the dbt project,
to profiles.yml, the vars or the home re-parses. Per-build values travel in
the environment (dbt_call), never in the vars. Imports dbt lazily.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from apy_runway.foundation import console
from apy_runway.foundation.console import UserError, log
from inference import contracts

# arguments of a dbt command that also shape its parse (flag -> takes a value)
PARSE_FLAGS = {"--project-dir": True, "--profiles-dir": True, "--target-path": True, "--vars": True}
# environment values read only at execution: they never invalidate the manifest
EXECUTION_ENV = {contracts.ENV_REFRESH_FROM_DATE, contracts.ENV_REFRESH_SCOPE, "DBT_LOG_PATH"}
FAILED = {"error", "fail", "runtime error"}


@dataclass(frozen=True)
class DbtCall:
    """One dbt command line (without the executable) and its environment."""

    args: list[str]
    env: dict[str, str]
    command: str


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Iterator[None]:
    """os.environ with `values` set (dbt reads its env at each invocation)."""
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _parse_args(args: list[str]) -> list[str]:
    kept, i = ["parse"], 1
    while i < len(args):
        if args[i] in PARSE_FLAGS:
            kept += args[i : i + 2]
            i += 2
        else:
            i += 1
    return kept


def _project_files(project_dir: Path) -> list[tuple[str, int, int]]:
    skip = {"target", "logs", "dbt_packages", "__pycache__", ".user.yml"}
    found = []
    for root, dirs, files in os.walk(project_dir):
        dirs[:] = sorted(d for d in dirs if d not in skip)
        for name in sorted(files):
            stat = (Path(root) / name).stat()
            found.append((str(Path(root) / name), stat.st_mtime_ns, stat.st_size))
    return found


class DbtSession:
    """dbt in this process with a parsed manifest kept between invocations.

    Use: `session = DbtSession()`, then `run_dbt(..., session=session)` or
    `incremental_build(..., session=session)`. `parses` counts the parses it
    needed (one per change of the project, its profile, vars or home)."""

    def __init__(self) -> None:
        self.manifest: Any = None
        self.fingerprint: tuple | None = None
        self.parses = 0
        self.invocations = 0

    def _fingerprint(self, call: DbtCall) -> tuple:
        args = _parse_args(call.args)
        project_dir = Path(args[args.index("--project-dir") + 1])
        profiles = Path(args[args.index("--profiles-dir") + 1]) / "profiles.yml"
        env = sorted((k, v) for k, v in call.env.items() if k not in EXECUTION_ENV)
        profile = profiles.stat() if profiles.exists() else None
        return (
            tuple(args),
            tuple(env),
            tuple(_project_files(project_dir)),
            (profile.st_mtime_ns, profile.st_size) if profile else None,
        )

    def _parse(self, call: DbtCall, fingerprint: tuple) -> None:
        from dbt.cli.main import dbtRunner

        began = time.perf_counter()
        result = dbtRunner().invoke([*_parse_args(call.args), *self._log_flags()])
        if not result.success or result.result is None:
            raise UserError(f"dbt parse failed: {result.exception or 'see dbt.log'}")
        self.manifest, self.fingerprint = result.result, fingerprint
        self.parses += 1
        log(f"dbt parsed the project ({time.perf_counter() - began:.1f} s; kept for later builds)")

    @staticmethod
    def _log_flags(quiet: bool = True, light: bool = False) -> list[str]:
        shown = [] if console.verbose and not quiet else ["--log-level", "none"]
        if light:  # the file gets warnings and errors only, and no JSON artifact is written
            return [*shown, "--log-level-file", "warn", "--no-write-json"]
        return [*shown, "--log-level-file", "debug"]

    def invoke(
        self, call: DbtCall, quiet: bool = False, light: bool = False
    ) -> subprocess.CompletedProcess:
        """Run `call` in this process; raise UserError naming each failed node.
        `light` (an hourly incremental build) writes no manifest.json nor
        run_results.json and logs only warnings and errors to dbt.log: the
        manifest on disk stays the last parse's or full build's, which hold
        the same project (a changed project is parsed again, and written)."""
        import gc

        from dbt.cli.main import dbtRunner

        began = time.perf_counter()
        with _environment(call.env):
            fingerprint = self._fingerprint(call)
            if self.manifest is None or fingerprint != self.fingerprint:
                self._parse(call, fingerprint)
                # the parsed manifest lives as long as the session: the cyclic
                # collector need not walk its ~10^5 objects at every build again
                gc.collect()
                gc.freeze()
            try:
                result = dbtRunner(manifest=self.manifest).invoke(
                    [*call.args, *self._log_flags(quiet, light)]
                )
            finally:
                _release_warehouse()
        self.invocations += 1
        seconds = time.perf_counter() - began
        log_file = Path(call.env["DBT_LOG_PATH"]) / "dbt.log"
        results = list(getattr(result.result, "results", None) or [])
        failed = [r for r in results if str(r.status) in FAILED]
        if result.exception is not None or failed or not result.success:
            detail = "\n".join(
                f"  {r.node.unique_id}: {str(r.status).upper()}: {r.message}" for r in failed
            )
            raise UserError(
                f"dbt {call.command} failed after {seconds:.0f} s"
                + (f": {result.exception}" if result.exception is not None else "")
                + (f"\n{detail}" if detail else "")
                + f"\nevery line: {log_file}"
            )
        summary = summarize(call.command, results, seconds, log_file)
        if not quiet:
            log(summary)
        return subprocess.CompletedProcess(call.args, 0, summary, "")


def _release_warehouse() -> None:
    """Close the DuckDB file dbt-duckdb keeps open in this process between
    invocations: the export, the board and other readers open it next, and
    DuckDB refuses a second open of a file with another configuration."""
    import gc

    from dbt.adapters.factory import cleanup_connections

    cleanup_connections()
    try:
        from dbt.adapters.duckdb.connections import DuckDBConnectionManager
    except ImportError:  # another adapter
        return
    with DuckDBConnectionManager._LOCK:
        if DuckDBConnectionManager._ENV is not None:
            DuckDBConnectionManager._ENV.close()
            DuckDBConnectionManager._ENV = None
    gc.collect()  # cursors dbt dropped still hold the database open until collected


def summarize(command: str, results: list, seconds: float, log_file: Path) -> str:
    """One line: nodes by kind, outcomes, time, where every line went."""
    kinds = Counter(str(r.node.resource_type) for r in results)
    outcomes = Counter(str(r.status).upper() for r in results)
    what = ", ".join(f"{n} {kind}{'s' if n != 1 else ''}" for kind, n in sorted(kinds.items()))
    done = " ".join(f"{k}={n}" for k, n in sorted(outcomes.items()))
    return f"dbt {command} ok: {what}; {done}; {seconds:.1f} s (every line: {log_file})"
