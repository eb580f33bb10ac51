"""`apy-runway check-leakage --cut DATE`: build the features and labels twice from
the home's raw snapshots, in full and cut at DATE (dbt var as_of_date), compare
them (`compare_builds`, pure, reads both DuckDB files read-only), exit 1 on a leak.

The rule: a point-in-time feature of day d uses days <= d only, so for every day
up to the cut it is identical in both builds; a label of the cut build equals
the full build's or is null, and is null for the last horizon_days days before
the cut (their future windows reach past it). Builds land in
<home>/data/leakage/{full,cut}.duckdb, the report in report.json.

Imports: DuckDB, the standard library, apy_runway/foundation, landing and
warehouse, and inference/ (floor 5, warehouse).
"""

from __future__ import annotations

import json
import shutil
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path

import duckdb

from apy_runway.foundation.console import UserError, log
from apy_runway.foundation.defaults import DBT_PROJECT_DIR
from apy_runway.foundation.paths import ProjectPaths
from apy_runway.warehouse.dbt import run_dbt
from inference.contracts import KEY_COLUMNS, LABEL_COLUMN

FEATURES_TABLE = "int_pool_days_featurized"
LABELS_TABLE = "int_pool_days_labeled"
SELECT = f"+{FEATURES_TABLE} +{LABELS_TABLE}"
# Floating-point aggregates over windows may be summed in another order when a
# partition is shorter; anything above this relative difference is a change.
RELATIVE_TOLERANCE = 1e-9


@dataclass
class LeakageReport:
    cut_date: date
    compared_rows: int = 0
    # feature column -> number of days <= cut where the two builds differ
    feature_mismatches: dict[str, int] = field(default_factory=dict)
    # (pool, day) rows <= cut present in only one of the builds
    rows_only_in_full: int = 0
    rows_only_in_cut: int = 0
    # labels the cut build gives that differ from the full build's (not null)
    label_mismatches: int = 0
    # labels the cut build gives although day + horizon is after the cut
    labels_past_cut: int = 0
    labeled_rows_in_cut: int = 0

    @property
    def leaking_features(self) -> list[str]:
        return sorted(name for name, count in self.feature_mismatches.items() if count)

    @property
    def is_clean(self) -> bool:
        return not (
            self.leaking_features
            or self.rows_only_in_full
            or self.rows_only_in_cut
            or self.label_mismatches
            or self.labels_past_cut
        )

    def summary(self) -> str:
        if self.is_clean:
            return (
                f"no leakage at cut {self.cut_date}: {self.compared_rows} feature rows "
                f"identical, {self.labeled_rows_in_cut} cut-build labels consistent"
            )
        parts = []
        if self.leaking_features:
            parts.append(
                "features differ: "
                + ", ".join(
                    f"{name} ({self.feature_mismatches[name]} rows)"
                    for name in self.leaking_features
                )
            )
        if self.rows_only_in_full or self.rows_only_in_cut:
            parts.append(
                f"rows only in full build: {self.rows_only_in_full}, "
                f"only in cut build: {self.rows_only_in_cut}"
            )
        if self.label_mismatches:
            parts.append(f"{self.label_mismatches} cut-build labels differ from the full build")
        if self.labels_past_cut:
            parts.append(f"{self.labels_past_cut} cut-build labels whose window passes the cut")
        return f"leakage at cut {self.cut_date}: " + "; ".join(parts)


def _quoted(path: str | Path) -> str:
    """A path inside a single-quoted SQL string literal."""
    return str(Path(path)).replace("'", "''")


def _differs(column: str, data_type: str) -> str:
    """SQL: the column differs between aliases full_side and cut_side (nulls compare equal)."""
    if data_type.upper() in ("DOUBLE", "FLOAT", "REAL") or data_type.upper().startswith("DECIMAL"):
        return (
            f"(full_side.{column} is distinct from cut_side.{column} and not ("
            f"full_side.{column} is not null and cut_side.{column} is not null and "
            f"abs(full_side.{column} - cut_side.{column}) <= {RELATIVE_TOLERANCE} * "
            f"greatest(1.0, abs(full_side.{column}), abs(cut_side.{column}))))"
        )
    return f"(full_side.{column} is distinct from cut_side.{column})"


def compare_builds(
    full_warehouse: str | Path,
    cut_warehouse: str | Path,
    cut_date: date,
    horizon_days: int,
    features_table: str = FEATURES_TABLE,
    labels_table: str = LABELS_TABLE,
) -> LeakageReport:
    """Compare every feature and label of days <= cut_date between two builds."""
    report = LeakageReport(cut_date=cut_date)
    con = duckdb.connect()
    try:
        con.execute("set TimeZone = 'UTC'")
        con.execute(f"attach '{_quoted(full_warehouse)}' as full_build (read_only)")
        con.execute(f"attach '{_quoted(cut_warehouse)}' as cut_build (read_only)")
        columns = con.execute(
            "select column_name, data_type from duckdb_columns() "
            "where database_name = 'full_build' and table_name = ? order by column_index",
            [features_table],
        ).fetchall()
        if not columns:
            raise ValueError(f"no table {features_table} in {full_warehouse}")
        compared = [(name, kind) for name, kind in columns if name not in KEY_COLUMNS]
        keys = " and ".join(f"full_side.{key} = cut_side.{key}" for key in KEY_COLUMNS)
        counts = ",\n".join(
            f'count(*) filter (where {_differs(name, kind)}) as "{name}"' for name, kind in compared
        )
        cut_literal = f"date '{cut_date.isoformat()}'"
        row = con.execute(f"""
            with
            full_rows as (
                select * from full_build.main.{features_table}
                where snapshot_date <= {cut_literal}
            ),
            cut_rows as (
                select * from cut_build.main.{features_table}
                where snapshot_date <= {cut_literal}
            )
            select
                count(*) as compared_rows,
                {counts}
            from full_rows as full_side
            inner join cut_rows as cut_side on {keys}
        """).fetchone()
        report.compared_rows = row[0]
        report.feature_mismatches = {
            name: count for (name, _), count in zip(compared, row[1:], strict=True)
        }
        report.rows_only_in_full, report.rows_only_in_cut = con.execute(f"""
            select
                count(*) filter (where cut_side.pool_id is null),
                count(*) filter (where full_side.pool_id is null)
            from (
                select pool_id, snapshot_date from full_build.main.{features_table}
                where snapshot_date <= {cut_literal}
            ) as full_side
            full outer join (
                select pool_id, snapshot_date from cut_build.main.{features_table}
                where snapshot_date <= {cut_literal}
            ) as cut_side on {keys}
        """).fetchone()
        (report.labeled_rows_in_cut, report.label_mismatches, report.labels_past_cut) = (
            con.execute(f"""
            select
                count(*) filter (where cut_side.{LABEL_COLUMN} is not null),
                count(*) filter (
                    where cut_side.{LABEL_COLUMN} is not null
                    and cut_side.{LABEL_COLUMN} is distinct from full_side.{LABEL_COLUMN}
                ),
                count(*) filter (
                    where cut_side.{LABEL_COLUMN} is not null
                    and cut_side.snapshot_date + {int(horizon_days)} > {cut_literal}
                )
            from cut_build.main.{labels_table} as cut_side
            left join full_build.main.{labels_table} as full_side on {keys}
        """).fetchone()
        )
    finally:
        con.close()
    return report


def leakage_dir(paths: ProjectPaths) -> Path:
    return paths.data / "leakage"


def check_leakage(
    paths: ProjectPaths, cut: date, project_dir: Path = DBT_PROJECT_DIR, dbt_vars: str | None = None
) -> LeakageReport:
    """Build full and cut warehouses side by side, compare, write report.json."""
    from apy_runway.landing.ingest.store import has_rows

    if not has_rows(paths):
        raise UserError(f"no raw snapshots in {paths.raw_store}: run `apy-runway ingest` first")
    base = _yaml_vars(dbt_vars)
    if "as_of_date" in base:
        raise UserError("--vars must not set as_of_date: check-leakage sets it for the cut build")
    folder = leakage_dir(paths)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    builds = {"full": base, "cut": {**base, "as_of_date": cut.isoformat()}}
    log(f"check-leakage: building features and labels in full and cut at {cut}")

    def build(name: str) -> Path:
        warehouse = folder / f"{name}.duckdb"
        run_dbt(
            paths,
            "run",
            dbt_vars=builds[name] or None,
            select=SELECT,
            quiet=True,
            full_refresh=True,
            project_dir=Path(project_dir).resolve(),
            warehouse=warehouse,
            target_path=folder / f"target_{name}",
        )
        return warehouse

    with ThreadPoolExecutor(max_workers=2) as pool:
        full, cut_build = pool.map(build, ("full", "cut"))
    horizon = _horizon_days(full)
    report = compare_builds(full, cut_build, cut, horizon)
    (folder / "report.json").write_text(
        json.dumps(
            {
                **asdict(report),
                "cut_date": cut.isoformat(),
                "horizon_days": horizon,
                "is_clean": report.is_clean,
                "summary": report.summary(),
            },
            indent=1,
        )
        + "\n"
    )
    log(f"wrote {folder / 'report.json'}")
    return report


def _yaml_vars(text: str | None) -> dict:
    if not text:
        return {}
    import yaml  # comes with dbt

    try:
        parsed = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise UserError(f"--vars is not YAML: {error}") from None
    if not isinstance(parsed, dict):
        raise UserError(f"--vars must be a YAML mapping, got {text!r}")
    return parsed


def _horizon_days(warehouse: Path) -> int:
    """The label horizon the build used (label settings travel as columns)."""
    with duckdb.connect(str(warehouse), read_only=True) as con:
        values = con.execute(f"select distinct horizon_days from {LABELS_TABLE}").fetchall()
    if len(values) != 1:
        raise UserError(f"{warehouse}: {LABELS_TABLE} holds {len(values)} horizons")
    return int(values[0][0])
