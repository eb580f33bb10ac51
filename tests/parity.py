"""Table parity between two engines' builds of the dbt project (tests/test_spark_parity.py).

Two cells are equal when both are null, or both are numbers with
|a - b| <= 1e-9 * max(1, |a|, |b|) (two NaNs count as equal), or, for every other type
(text, booleans, dates, timestamps), when they are equal. Rows match as sets: the
order of rows does not matter, and each row is found by its key (the columns the
model's uniqueness test names). A repeated key in either table is a difference, never
silently paired.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import Counter
from decimal import Decimal

import pyarrow as pa

RELATIVE_TOLERANCE = 1e-9
MAX_REPORTED = 20


def cells_equal(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if _is_number(a) and _is_number(b):
        a, b = float(a), float(b)
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return abs(a - b) <= RELATIVE_TOLERANCE * max(1.0, abs(a), abs(b))
    return _canonical(a) == _canonical(b)


def _is_number(value) -> bool:
    return isinstance(value, (int, float, Decimal)) and not isinstance(value, bool)


def _canonical(value):
    # a timestamp with a time zone and one without compare as UTC instants (both
    # engines store UTC: DuckDB's timestamptz, Spark's session time zone pinned to UTC)
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.astimezone(dt.UTC).replace(tzinfo=None)
    return value


def _rows_by_key(table: pa.Table, key: list[str], side: str, problems: list[str]) -> dict:
    columns = table.to_pydict()
    keys = list(zip(*(columns[name] for name in key), strict=True)) if key else []
    repeated = [k for k, n in Counter(keys).items() if n > 1]
    for k in repeated[:MAX_REPORTED]:
        problems.append(f"{side}: key {dict(zip(key, k, strict=True))} occurs more than once")
    names = table.column_names
    return {k: {name: columns[name][i] for name in names} for i, k in enumerate(keys)}


def table_differences(name: str, left: pa.Table, right: pa.Table, key: list[str]) -> list[str]:
    """Every difference between `left` (the reference build) and `right`, one line each,
    naming the table, the key and the column; empty when the tables are equal."""
    problems: list[str] = []
    left_columns, right_columns = set(left.column_names), set(right.column_names)
    for column in sorted(left_columns - right_columns):
        problems.append(f"{name}: column {column} only in the reference build")
    for column in sorted(right_columns - left_columns):
        problems.append(f"{name}: column {column} only in the compared build")
    missing_key = [column for column in key if column not in left_columns & right_columns]
    if missing_key:
        return [*problems, f"{name}: key column(s) {missing_key} missing"]
    left_rows = _rows_by_key(left, key, f"{name} (reference)", problems)
    right_rows = _rows_by_key(right, key, f"{name} (compared)", problems)
    if left.num_rows != right.num_rows:
        problems.append(f"{name}: {left.num_rows} rows in the reference, {right.num_rows} compared")
    only_left = [k for k in left_rows if k not in right_rows]
    only_right = [k for k in right_rows if k not in left_rows]
    for k in only_left[:MAX_REPORTED]:
        problems.append(f"{name}: row {dict(zip(key, k, strict=True))} only in the reference")
    for k in only_right[:MAX_REPORTED]:
        problems.append(f"{name}: row {dict(zip(key, k, strict=True))} only in the compared build")
    shared_columns = sorted(left_columns & right_columns)
    mismatches = 0
    for k, row in left_rows.items():
        other = right_rows.get(k)
        if other is None:
            continue
        for column in shared_columns:
            if not cells_equal(row[column], other[column]):
                mismatches += 1
                if mismatches <= MAX_REPORTED:
                    problems.append(
                        f"{name}: row {dict(zip(key, k, strict=True))} column {column}: "
                        f"{row[column]!r} (reference) != {other[column]!r}"
                    )
    if mismatches > MAX_REPORTED:
        problems.append(f"{name}: {mismatches} differing cells in all")
    return problems
