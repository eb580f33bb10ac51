"""Two warehouses built from the same raw store hold the same tables: the
proof that an incremental build equals a full rebuild.

compare_warehouses reads both DuckDB files (read-only) and compares every
table and view of the dbt project both ways: the same columns and types, the
same rows (matched on each table's key, so rows compare as sets whatever
their physical order), and every value equal: both null, or
|a - b| <= 1e-9 * max(1, |a|, |b|) for floating-point columns (a window sum
may add in another order), exactly equal otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from inference.contracts import KEY_COLUMNS

RELATIVE_TOLERANCE = 1e-9
FLOAT_TYPES = ("DOUBLE", "FLOAT", "REAL")

# Every relation the project builds, with the columns that identify a row.
TABLE_KEYS: dict[str, tuple[str, ...]] = {
    "stg_defillama__pool_snapshots": ("pool_id", "snapshot_hour"),
    "int_pool_snapshots_downsampled_to_daily": KEY_COLUMNS,
    "int_pool_days_densified": KEY_COLUMNS,
    "int_pool_days_rolling_features": KEY_COLUMNS,
    "int_pool_days_cross_sectional_features": KEY_COLUMNS,
    "int_pool_days_featurized": KEY_COLUMNS,
    "int_pool_days_labeled": KEY_COLUMNS,
    "latest_features": ("pool_id",),
    "training_set": KEY_COLUMNS,
}


def _quoted(path: str | Path) -> str:
    return str(Path(path)).replace("'", "''")


def values_differ(column: str, data_type: str, left: str = "a", right: str = "b") -> str:
    """SQL: `column` differs between aliases `left` and `right` (nulls equal;
    floating point within the relative tolerance)."""
    a, b = f'{left}."{column}"', f'{right}."{column}"'
    kind = data_type.upper()
    if kind in FLOAT_TYPES or kind.startswith("DECIMAL"):
        return (
            f"({a} is distinct from {b} and not ({a} is not null and {b} is not null and "
            f"(abs({a} - {b}) <= {RELATIVE_TOLERANCE} * greatest(1.0, abs({a}), abs({b})) "
            f"or ({a} = {b}))))"
        )
    return f"({a} is distinct from {b})"


@dataclass
class TableDifference:
    table: str
    compared_rows: int = 0
    rows_only_left: int = 0
    rows_only_right: int = 0
    column_mismatches: dict[str, int] = field(default_factory=dict)
    schema_difference: str = ""

    @property
    def is_equal(self) -> bool:
        return not (
            self.rows_only_left
            or self.rows_only_right
            or self.schema_difference
            or any(self.column_mismatches.values())
        )

    def summary(self) -> str:
        if self.is_equal:
            return f"{self.table}: {self.compared_rows} rows equal"
        parts = []
        if self.schema_difference:
            parts.append(self.schema_difference)
        if self.rows_only_left or self.rows_only_right:
            parts.append(
                f"rows only in the first: {self.rows_only_left}, "
                f"only in the second: {self.rows_only_right}"
            )
        differing = {k: v for k, v in self.column_mismatches.items() if v}
        if differing:
            parts.append(
                "values differ: "
                + ", ".join(f"{k} ({v} rows)" for k, v in sorted(differing.items()))
            )
        return f"{self.table}: " + "; ".join(parts)


def _columns(con: duckdb.DuckDBPyConnection, database: str, table: str) -> list[tuple[str, str]]:
    return con.execute(
        "select column_name, data_type from duckdb_columns() "
        "where database_name = ? and table_name = ? order by column_index",
        [database, table],
    ).fetchall()


def compare_warehouses(
    left: str | Path, right: str | Path, tables: dict[str, tuple[str, ...]] | None = None
) -> dict[str, TableDifference]:
    """Compare `tables` (default: every relation the project builds that
    either warehouse holds) of two warehouses, both ways."""
    con = duckdb.connect()
    try:
        con.execute("set TimeZone = 'UTC'")
        con.execute(f"attach '{_quoted(left)}' as left_build (read_only)")
        con.execute(f"attach '{_quoted(right)}' as right_build (read_only)")
        if tables is None:
            present = {
                row[0]
                for row in con.execute(
                    "select distinct table_name from duckdb_columns() "
                    "where database_name in ('left_build', 'right_build')"
                ).fetchall()
            }
            tables = {t: k for t, k in TABLE_KEYS.items() if t in present}
        return {table: _compare_table(con, table, keys) for table, keys in tables.items()}
    finally:
        con.close()


def _compare_table(
    con: duckdb.DuckDBPyConnection, table: str, keys: tuple[str, ...]
) -> TableDifference:
    result = TableDifference(table)
    # columns as sets: a contract fixes the column order of a dbt-built table
    left_columns = sorted(_columns(con, "left_build", table))
    right_columns = sorted(_columns(con, "right_build", table))
    if left_columns != right_columns:
        result.schema_difference = (
            f"columns differ: {sorted(set(left_columns) ^ set(right_columns))}"
            if left_columns and right_columns
            else f"only in the {'first' if left_columns else 'second'} warehouse"
        )
        return result
    on = " and ".join(f'a."{k}" = b."{k}"' for k in keys)
    compared = [(name, kind) for name, kind in left_columns if name not in keys]
    counts = ", ".join(
        f'count(*) filter (where {values_differ(name, kind)}) as "{name}"'
        for name, kind in compared
    )
    row = con.execute(f"""
        select count(*) {", " + counts if counts else ""}
        from left_build.main."{table}" as a
        inner join right_build.main."{table}" as b on {on}
    """).fetchone()
    result.compared_rows = row[0]
    result.column_mismatches = {
        name: count for (name, _), count in zip(compared, row[1:], strict=True)
    }
    key_list = ", ".join(f'"{k}"' for k in keys)
    result.rows_only_left, result.rows_only_right = con.execute(f"""
        select
            (select count(*) from (
                select {key_list} from left_build.main."{table}"
                except all select {key_list} from right_build.main."{table}")),
            (select count(*) from (
                select {key_list} from right_build.main."{table}"
                except all select {key_list} from left_build.main."{table}"))
    """).fetchone()
    return result
