"""One absolute project home and the folders under it. Paths only: label settings
live in dbt vars (dbt_project/dbt_project.yml) and travel as columns of the
training set.

Imports: the standard library, apy_runway/foundation and inference/ (floor 3).
The home is the environment's contracts.ENV_HOME when set, else the repository
root. Every folder is created before dbt runs and every path handed to dbt is
absolute: dbt-duckdb's external materialisation does not create folders, and
the view it leaves behind holds the path it was given. DuckDB reads every path
as a glob pattern and dbt writes paths into SQL strings, so a home whose path
holds * ? [ ] { } or a quote (' " \\) is refused in one line; a space is fine.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from apy_runway.foundation.console import UserError
from apy_runway.foundation.defaults import REPO_ROOT
from inference import contracts

PROFILES_DIR = REPO_ROOT
# The drift reference's rows, exported by the dbt mart of that name beside the
# training set (models_py reads it from there, also for --training-set).
DRIFT_REFERENCE_FEATURES_FILE = "drift_reference_features.parquet"


@dataclass(frozen=True)
class ProjectPaths:
    home: Path

    @property
    def data(self) -> Path:
        return self.home / "data"

    @property
    def landing(self) -> Path:
        """Inputs before validation (generated data, fetched API responses)."""
        return self.data / "landing"

    @property
    def landing_refused(self) -> Path:
        """Landing files ingest refused, each beside its reason (ingest/refused.py)."""
        return self.landing / "refused"

    @property
    def generated_snapshots(self) -> Path:
        """`apy-runway generate`'s output, ingest's default input."""
        return self.landing / "generated_snapshots.parquet"

    @property
    def landed_pools(self) -> Path:
        """`apy-runway collect`'s hourly /pools responses: <UTC hour>.json.gz."""
        return self.landing / "pools"

    @property
    def raw(self) -> Path:
        """The append-only raw store (ingest writes it, dbt reads it)."""
        return self.data / "raw"

    @property
    def raw_store(self) -> Path:
        """Validated rows in the raw contract + landing_order, partitioned by
        UTC day: pool_snapshots/snapshot_date=YYYY-MM-DD/<landing id>.parquet."""
        return self.raw / "pool_snapshots"

    @property
    def manifest(self) -> Path:
        """One JSON line per landed file: name, size, sha256, landing order, rows."""
        return self.raw / "manifest.jsonl"

    @property
    def superseded_rows(self) -> Path:
        """The (pool, hour, landing order) of every stored row a later landed
        file replaced: staging leaves them out."""
        return self.raw / "superseded_rows.parquet"

    @property
    def quarantine(self) -> Path:
        return self.data / "quarantine"

    @property
    def quarantine_store(self) -> Path:
        """Quarantined rows, one parquet file per landed file (its own bad rows)
        and per superseding file (<id>-superseded.parquet)."""
        return self.quarantine / "pool_snapshots"

    @property
    def writer_lock(self) -> Path:
        """Every writer holds an OS lock on this file while it runs
        (foundation/lock.py); it records the holder's PID and command."""
        return self.data / "writer.lock"

    @property
    def build_state(self) -> Path:
        """Which landed files each dbt selector's incremental build has taken in."""
        return self.data / "build_state.json"

    @property
    def warehouse(self) -> Path:
        return self.data / "warehouse.duckdb"

    @property
    def exports(self) -> Path:
        """dbt's parquet exports: training_set, latest_features,
        drift_reference_features, feature_columns.json."""
        return self.data / "exports"

    @property
    def training_set(self) -> Path:
        return self.exports / "training_set.parquet"

    @property
    def latest_features(self) -> Path:
        return self.exports / "latest_features.parquet"

    @property
    def drift_reference_features(self) -> Path:
        return self.exports / DRIFT_REFERENCE_FEATURES_FILE

    @property
    def feature_columns(self) -> Path:
        return self.exports / "feature_columns.json"

    @property
    def runs(self) -> Path:
        """One folder per training run: runs/<run_id>/ (model, metadata, report)."""
        return self.home / "runs"

    def ensure(self) -> ProjectPaths:
        refuse_glob_characters(self.home, "project home")
        refuse_glob_characters(self.data, "data folder")
        for folder in (self.landing, self.raw, self.quarantine, self.exports, self.runs):
            folder.mkdir(parents=True, exist_ok=True)
        return self

    def dbt_env(self) -> dict[str, str]:
        """Environment variables read by profiles.yml and the dbt project."""
        return {
            contracts.ENV_DATA_DIR: str(self.data),
            contracts.ENV_DUCKDB_PATH: str(self.warehouse),
            "DBT_PROFILES_DIR": str(PROFILES_DIR),
        }


GLOB_CHARACTERS = frozenset("*?[]{}")


def exact_path(path: str | Path) -> str:
    """`path` as a DuckDB read_* pattern that matches that one file only:
    every glob character in brackets ([*] [?] [[] []] [{] [}]). DuckDB's
    read_csv / read_parquet / read_text read a path as a pattern, so
    `data[1].csv` would read data1.csv and `*.csv` its neighbours; ATTACH,
    connect and COPY ... TO take paths as they are."""
    return "".join(f"[{c}]" if c in GLOB_CHARACTERS else c for c in str(path))


# dbt writes the home's paths into SQL string literals (sources, exports): a
# quote or backslash there would end the literal, so such a home is refused
QUOTE_CHARACTERS = frozenset("'\"\\")


def refuse_glob_characters(path: Path, what: str) -> None:
    """DuckDB reads paths as glob patterns and dbt writes them into SQL
    strings: refuse a path either would misread (a space is fine)."""
    quotes = sorted(set(str(path)) & QUOTE_CHARACTERS)
    if quotes:
        raise UserError(
            f"{what} {path} contains the quote character(s) {' '.join(quotes)}: the dbt "
            "build writes this path into SQL strings, where a quote would end them. Use a "
            "path without ' \" or \\ (a space is fine)"
        )
    found = sorted(set(str(path)) & GLOB_CHARACTERS)
    if found:
        raise UserError(
            f"{what} {path} contains the glob character(s) {' '.join(found)}: DuckDB reads "
            "paths as patterns, so the raw store under it could not be read exactly. "
            "Use a path without * ? [ ] { }"
        )


def project_paths(home: str | Path | None = None) -> ProjectPaths:
    """Resolve the absolute project home (argument, $APY_RUNWAY_HOME, repo root)."""
    chosen = home or os.environ.get(contracts.ENV_HOME) or REPO_ROOT
    paths = ProjectPaths(Path(chosen).expanduser().resolve())
    refuse_glob_characters(paths.home, "project home")
    return paths
