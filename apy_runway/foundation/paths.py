"""One absolute project home and the folders under it.

Python constants cover paths only; label settings live in dbt vars
(dbt_project/dbt_project.yml) and travel as columns of the training set.

The home is ``$APY_RUNWAY_HOME`` when set, else the repository root. Every
folder is created before dbt runs: dbt-duckdb's external materialisation does
not create folders, and the view it leaves behind holds the path it was given,
so paths handed to dbt are always absolute.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DBT_PROJECT_DIR = REPO_ROOT / "dbt_project"
PROFILES_DIR = REPO_ROOT


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
    def generated_snapshots(self) -> Path:
        """`apy-runway generate`'s output, ingest's default input."""
        return self.landing / "generated_snapshots.parquet"

    @property
    def raw(self) -> Path:
        """Validated raw contract parquet: the dbt source."""
        return self.data / "raw"

    @property
    def raw_snapshots(self) -> Path:
        return self.raw / "pool_snapshots.parquet"

    @property
    def quarantine(self) -> Path:
        return self.data / "quarantine"

    @property
    def quarantined_rows(self) -> Path:
        return self.quarantine / "pool_snapshots_quarantined.parquet"

    @property
    def warehouse(self) -> Path:
        return self.data / "warehouse.duckdb"

    @property
    def exports(self) -> Path:
        """dbt's parquet exports: training_set, latest_features, feature_columns.json."""
        return self.data / "exports"

    @property
    def training_set(self) -> Path:
        return self.exports / "training_set.parquet"

    @property
    def latest_features(self) -> Path:
        return self.exports / "latest_features.parquet"

    @property
    def feature_columns(self) -> Path:
        return self.exports / "feature_columns.json"

    @property
    def runs(self) -> Path:
        """One folder per training run: runs/<run_id>/ (model, metadata, report)."""
        return self.home / "runs"

    def ensure(self) -> ProjectPaths:
        for folder in (self.landing, self.raw, self.quarantine, self.exports, self.runs):
            folder.mkdir(parents=True, exist_ok=True)
        return self

    def dbt_env(self) -> dict[str, str]:
        """Environment variables read by profiles.yml and the dbt project."""
        return {
            "APY_RUNWAY_DATA_DIR": str(self.data),
            "APY_RUNWAY_DUCKDB_PATH": str(self.warehouse),
            "DBT_PROFILES_DIR": str(PROFILES_DIR),
        }


def project_paths(home: str | Path | None = None) -> ProjectPaths:
    """Resolve the absolute project home (argument, $APY_RUNWAY_HOME, repo root)."""
    chosen = home or os.environ.get("APY_RUNWAY_HOME") or REPO_ROOT
    return ProjectPaths(Path(chosen).expanduser().resolve())
