"""`apy-runway ingest`: real DuckDB reads of DefiLlama-format fixtures, the shared
real sample, every quarantine reason, clear errors, and the dbt staging model
reading the contract it writes. The append-only store itself (manifest,
versions, superseding, compaction, recovery) is tests/test_raw_store.py."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pytest

from apy_runway.foundation.console import UserError
from apy_runway.landing.ingest import (
    CONTRACT,
    POOLS_METADATA_FIELDS,
    REASONS,
    ingest,
)
from inference.contracts import TIMESTAMP_UNITS

FIXTURES = Path(__file__).parent / "fixtures" / "defillama"
CHART_DIR = FIXTURES / "chart"
POOLS_JSON = FIXTURES / "pools.json"
BAD_ROWS_CSV = FIXTURES / "bad_rows.csv"
SAMPLE_CSV = Path("/work/shared/data/defillama_sample/chart_history.csv")

# /pools fields that are model outputs or look-ahead summaries: never inputs
FORBIDDEN_POOLS_FIELDS = {
    "predictions",
    "mu",
    "sigma",
    "apyPct1D",
    "apyPct7D",
    "apyPct30D",
    "outlier",
    "apyMean30d",
    "count",
    "predictedClass",
    "predictedProbability",
}


def query(sql: str, params: list | None = None) -> list[tuple]:
    con = duckdb.connect()
    con.execute("set TimeZone = 'UTC'")
    return con.execute(sql, params or []).fetchall()


def columns_of(relation: str) -> list[tuple[str, str]]:
    return [(row[0], row[1]) for row in query(f"describe select * from {relation}")]


def stored(paths) -> str:
    """SQL relation: the raw store's files as written (contract + landing_order)."""
    return f"read_parquet('{paths.raw_store}/*/*.parquet', hive_partitioning = false)"


def raw(paths) -> str:
    """SQL relation: the store's current rows in the raw contract (what staging
    reads: per pool and hour, the most recently landed file's row)."""
    return f"""(
        select stored.* exclude (landing_order)
        from {stored(paths)} as stored
        anti join read_parquet('{paths.superseded_rows}') as superseded
            on stored.pool = superseded.pool
            and date_trunc('hour', stored."timestamp") = superseded.snapshot_hour
            and stored.landing_order = superseded.landing_order
    )"""


def quarantined(paths) -> str:
    """SQL relation: every quarantined row."""
    return f"read_parquet('{paths.quarantine_store}/*.parquet', union_by_name = true)"


def store_files(paths) -> dict[str, bytes]:
    """Every file of the raw store and the quarantine, by path: the state a
    refused ingest must leave as it was."""
    return {
        str(f.relative_to(paths.data)): f.read_bytes()
        for folder in (paths.raw, paths.quarantine)
        for f in sorted(folder.rglob("*"))
        if f.is_file()
    }


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


# --------------------------------------------------------------------------- contract


CONTRACT_TYPES = [
    (name, {"TIMESTAMPTZ": "TIMESTAMP WITH TIME ZONE"}.get(kind, kind)) for name, kind in CONTRACT
]
STORED_TYPES = [*CONTRACT_TYPES, ("landing_order", "BIGINT")]


def test_chart_json_with_pools_metadata(project_home):
    result = ingest([CHART_DIR], project_home, pools_json=POOLS_JSON)

    # 3 files: 5 + 4 + 2 items; one null apy, one text tvl
    assert (result.rows_in, result.rows_staged, result.rows_quarantined) == (11, 9, 2)
    assert result.by_reason["missing_apy"] == 1
    assert result.by_reason["non_numeric_tvl"] == 1
    assert result.pools == 3
    assert columns_of(stored(project_home)) == STORED_TYPES

    staged = {
        row[0]: row[1:]
        for row in query(
            f"select pool, count(*), any_value(chain), any_value(project), any_value(symbol), "
            f"any_value(stablecoin), any_value(ilRisk), any_value(exposure), any_value(poolMeta) "
            f"from {raw(project_home)} group by pool"
        )
    }
    # pool id comes from the file name; metadata is joined from /pools by that id
    assert staged["aa70268e-4b52-42bf-a116-608b370f9501"] == (
        4,
        "Ethereum",
        "aave-v3",
        "USDC",
        True,
        "no",
        "single",
        None,
    )
    assert staged["6f2ecd7e-1c3d-4a52-9d6b-3b8a2f1c0d11"] == (
        3,
        "Arbitrum",
        "uniswap-v3",
        "WETH-USDC",
        False,
        "yes",
        "multi",
        "0.05%",
    )
    # a pool missing from /pools keeps its history, with unknown metadata
    assert staged["0c5e9a1b-33f4-4d8e-b1a2-7f6e5d4c3b2a"] == (
        2,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
    )

    # values come from /chart, never from the /pools current state
    apy, tvl = query(
        f"select apy, tvlUsd from {raw(project_home)} "
        f"where pool = '6f2ecd7e-1c3d-4a52-9d6b-3b8a2f1c0d11' order by timestamp limit 1"
    )[0]
    assert (apy, tvl) == (22.1, 91_000_000.0)

    for relation in (stored(project_home), quarantined(project_home)):
        names = {name for name, _ in columns_of(relation)}
        assert not names & FORBIDDEN_POOLS_FIELDS
    forbidden_values = query(
        f"select count(*) from {quarantined(project_home)} "
        f"where extra_fields like '%predict%' or extra_fields like '%apyMean30d%'"
    )[0][0]
    assert forbidden_values == 0
    assert set(POOLS_METADATA_FIELDS) <= {name for name, _ in CONTRACT}


def test_chart_json_quarantine_keeps_the_original_item(project_home):
    ingest([CHART_DIR], project_home, pools_json=POOLS_JSON)
    rows = query(
        f"select reason, pool, tvlUsd, extra_fields, source_file, source_row, ingested_at "
        f"from {quarantined(project_home)} order by reason"
    )
    assert [row[0] for row in rows] == ["missing_apy", "non_numeric_tvl"]
    _, pool, tvl, extra, source_file, source_row, ingested_at = rows[1]
    assert pool == "6f2ecd7e-1c3d-4a52-9d6b-3b8a2f1c0d11"
    assert tvl == "not reported"
    assert json.loads(extra) == {
        "timestamp": "2024-11-13T23:01:05.000Z",
        "tvlUsd": "not reported",
        "apy": 20.4,
        "apyBase": 18.1,
        "apyReward": 2.3,
        "il7d": -0.43,
        "apyBase7d": 17.9,
    }
    assert Path(source_file).name == f"{pool}.json"
    assert source_row == 3  # third item of "data"
    assert abs((datetime.now(UTC) - ingested_at).total_seconds()) < 600


def test_chart_files_read_in_several_batches_give_the_same_rows(
    project_home, tmp_path, monkeypatch
):
    import apy_runway.landing.ingest as ingest_module
    from apy_runway.foundation.paths import project_paths
    from apy_runway.landing.ingest import readers

    ingest([CHART_DIR], project_home, pools_json=POOLS_JSON)
    rows = f"select * from {raw(project_home)} order by pool, timestamp"
    bad = f"select * exclude (ingested_at) from {quarantined(project_home)} order by all"
    staged, bad_rows = query(rows), query(bad)
    # 3 files -> landing units of 2 and 1 file, in another home
    monkeypatch.setattr(ingest_module, "JSON_FILES_PER_SCAN", 2)
    monkeypatch.setattr(readers, "JSON_FILES_PER_SCAN", 2)
    other = project_paths(tmp_path / "other").ensure()
    ingest([CHART_DIR], other, pools_json=POOLS_JSON)
    assert query(rows.replace(raw(project_home), raw(other))) == staged
    assert query(bad.replace(quarantined(project_home), quarantined(other))) == bad_rows
    assert len(staged) == 9


@pytest.mark.skipif(
    not SAMPLE_CSV.exists(), reason=f"shared real sample not mounted at {SAMPLE_CSV}"
)
def test_real_shared_sample(project_home):
    result = ingest([SAMPLE_CSV], project_home)
    assert result.rows_in == 30_327
    assert result.rows_in == result.rows_staged + result.rows_quarantined
    assert result.pools == 161
    first, last, pools, rows = query(
        f"select min(timestamp)::date, max(timestamp)::date, count(distinct pool), count(*) "
        f"from {raw(project_home)}"
    )[0]
    assert (str(first), str(last)) == ("2024-06-06", "2025-06-05")
    assert (pools, rows) == (161, result.rows_staged)
    # optional columns the sample lacks are present and null
    assert query(
        f"select count(stablecoin), count(ilRisk), count(exposure) from {raw(project_home)}"
    )[0] == (0, 0, 0)


# --------------------------------------------------------------------------- quarantine


@pytest.fixture(scope="module")
def bad_rows_ingested(tmp_path_factory):
    from apy_runway.foundation.paths import project_paths

    paths = project_paths(tmp_path_factory.mktemp("bad_rows_home")).ensure()
    result = ingest([BAD_ROWS_CSV], paths)
    with BAD_ROWS_CSV.open(newline="") as handle:
        expected = list(csv.DictReader(handle))  # row i+1 = source_row
    rows = query(
        f"select source_row, reason, apy, tvlUsd, extra_fields, source_file "
        f"from {quarantined(paths)}"
    )
    return paths, result, expected, rows


# one file's own reasons; `superseded` needs a later file, `outranked` a stored
# snapshot row of the hour a /chart row claims (tests/test_raw_store.py)
FILE_REASONS = tuple(r for r in REASONS if r not in ("superseded", "outranked"))


def test_bad_rows_fixture_covers_every_reason(bad_rows_ingested):
    _, _, expected, _ = bad_rows_ingested
    assert {row["expected"] for row in expected} == set(FILE_REASONS) | {"staged"}


@pytest.mark.parametrize("reason", FILE_REASONS)
def test_every_bad_row_is_quarantined_with_its_reason(bad_rows_ingested, reason):
    _, result, expected, quarantined = bad_rows_ingested
    expected_rows = {i + 1 for i, row in enumerate(expected) if row["expected"] == reason}
    got_rows = {row[0] for row in quarantined if row[1] == reason}
    assert got_rows == expected_rows
    assert result.by_reason[reason] == len(expected_rows)


def test_accounting_and_staged_rows(bad_rows_ingested):
    paths, result, expected, quarantined = bad_rows_ingested
    assert result.rows_in == len(expected) == 36
    assert result.rows_in == result.rows_staged + result.rows_quarantined
    assert result.rows_quarantined == len(quarantined) == sum(result.by_reason.values())
    staged = query(f"select pool, timestamp, apy from {raw(paths)}")
    assert len(staged) == sum(row["expected"] == "staged" for row in expected)
    kept = {(pool, ts.isoformat(), apy) for pool, ts, apy in staged}
    # the hour's latest row, the tie's later input row, the duplicate's last copy
    assert ("p-hour", "2024-06-04T10:45:00+00:00", 6.0) in kept
    assert ("p-tie", "2024-06-05T12:00:00+00:00", 9.0) in kept
    assert ("p-dup", "2024-06-03T00:00:00+00:00", 5.0) in kept
    # naive ISO is UTC; epoch numbers without --timestamp-unit are not guessed
    assert {ts for pool, ts, _ in kept if pool == "p-epoch"} == {"2024-06-07T00:00:00+00:00"}
    # the plausibility bounds themselves are kept
    assert ("p-range", "2024-06-08T03:00:00+00:00", 1e6) in kept


def test_quarantine_keeps_original_text_and_provenance(bad_rows_ingested):
    _, _, expected, quarantined = bad_rows_ingested
    by_row = {row[0]: row for row in quarantined}
    for source_row, row in by_row.items():
        original = expected[source_row - 1]
        # every original field survives as text: contract columns + extra columns
        assert row[2] == (original["apy"] or None)
        assert row[3] == (original["tvlUsd"] or None)
        assert json.loads(row[4]) == {"expected": original["expected"], "note": original["note"]}
        assert row[5] == str(BAD_ROWS_CSV.resolve())
    assert by_row[13][2] == "1e400"  # try_cast gives inf: caught by isfinite


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2022-02-11T00:00:00.000Z", "2022-02-11T00:00:00+00:00"),
        ("2024-11-14T23:01:13.171Z", "2024-11-14T23:01:13.171000+00:00"),
        ("2024-11-14 23:01:13", "2024-11-14T23:01:13+00:00"),
        ("2024-11-14T23:01:13", "2024-11-14T23:01:13+00:00"),
        ("2024-11-15T01:01:13+02:00", "2024-11-14T23:01:13+00:00"),
    ],
)
def test_timestamp_formats_are_utc(project_home, tmp_path, text, expected):
    path = write_csv(tmp_path / "one.csv", ["timestamp", "pool", "apy"], [[text, "p", "3.5"]])
    result = ingest([path], project_home)
    assert result.rows_staged == 1
    (ts,) = query(f"select timestamp from {raw(project_home)}")[0]
    assert ts.isoformat() == expected


@pytest.mark.parametrize(
    ("unit", "text", "expected"),
    [
        ("s", "1731625273", "2024-11-14T23:01:13+00:00"),
        ("s", "1731625273.5", "2024-11-14T23:01:13.500000+00:00"),
        ("ms", "1731625273171", "2024-11-14T23:01:13.171000+00:00"),
        ("us", "1742342400000000", "2025-03-19T00:00:00+00:00"),
        ("ms", "1.742342400e12", "2025-03-19T00:00:00+00:00"),
    ],
)
def test_epoch_timestamps_in_the_unit_given(project_home, tmp_path, unit, text, expected):
    path = write_csv(tmp_path / "one.csv", ["timestamp", "pool", "apy"], [[text, "p", "3.5"]])
    result = ingest([path], project_home, timestamp_unit=unit)
    assert result.rows_staged == 1
    (ts,) = query(f"select timestamp from {raw(project_home)}")[0]
    assert ts.isoformat() == expected


@pytest.mark.parametrize("kind", ["csv", "parquet"])
@pytest.mark.parametrize(
    ("unit", "value", "reason"),
    [
        # the examples: none may be guessed into a date
        (None, 1742342400000000, "epoch_timestamp_without_unit"),
        (None, 20250319, "epoch_timestamp_without_unit"),
        (None, 0, "epoch_timestamp_without_unit"),
        (None, -86400, "epoch_timestamp_without_unit"),
        # a unit given, then the bounds: the wrong unit lands far off
        ("s", 1742342400000000, "unparseable_timestamp"),  # beyond any date
        ("ms", 1742342400000000, "timestamp_out_of_range"),  # year 57182
        ("s", 20250319, "timestamp_out_of_range"),  # 1970-08-23
        ("s", 0, "timestamp_out_of_range"),
        ("s", -86400, "timestamp_out_of_range"),
        ("s", 4070908800, "timestamp_out_of_range"),  # 2099-01-01
    ],
)
def test_implausible_timestamps_are_quarantined(project_home, tmp_path, kind, unit, value, reason):
    """Numbers in a timestamp column (text in CSV, numbers in parquet) are an
    epoch only in the unit given, and every time must lie in [2018-01-01,
    now + 1 day]. One good row keeps the file from being refused."""
    rows = [["2024-01-01T00:00:00Z", "good", "1.0"], [str(value), "bad", "1.0"]]
    path = write_csv(tmp_path / "t.csv", ["timestamp", "pool", "apy"], rows)
    if kind == "parquet":  # one numeric column: the good row is an epoch too
        good = 1704067200 * TIMESTAMP_UNITS.get(unit, 1)  # 2024-01-01
        path = tmp_path / "t.parquet"
        query(
            f"copy (select {good}::bigint as timestamp, 'good' as pool, 1.0 as apy "
            f"union all select {value}::bigint, 'bad', 1.0) to '{path}'"
        )
        if unit is None:  # no row to stage: the file is refused
            with pytest.raises(UserError, match="epoch_timestamp_without_unit 2"):
                ingest([path], project_home)
            return
    result = ingest([path], project_home, timestamp_unit=unit)
    assert (result.rows_staged, result.by_reason[reason]) == (1, 1)
    ((pool, got),) = query(f"select pool, reason from {quarantined(project_home)}")
    assert (pool, got) == ("bad", reason)


@pytest.mark.parametrize(
    ("column", "value", "reason"),
    [
        ("apy", "1e39", "apy_out_of_range"),
        ("apy", "-100.5", "apy_out_of_range"),
        ("apy", "1000000.1", "apy_out_of_range"),
        ("apyBase", "3.5e38", "apy_out_of_range"),
        ("apyReward", "-1e39", "apy_out_of_range"),
        ("tvlUsd", "1e39", "tvl_out_of_range"),
        ("tvlUsd", "1.1e13", "tvl_out_of_range"),
        ("tvlUsd", "-0.01", "negative_tvl"),
    ],
)
def test_implausible_values_are_quarantined_with_their_bound(
    project_home, tmp_path, column, value, reason
):
    header = ["timestamp", "pool", "apy", "apyBase", "apyReward", "tvlUsd"]
    good = ["2024-01-01T00:00:00Z", "good", "1", "1", "0", "1000"]
    bad = dict(zip(header, ["2024-01-01T00:00:00Z", "bad", "1", "1", "0", "1000"], strict=True))
    bad[column] = value
    path = write_csv(tmp_path / "v.csv", header, [good, list(bad.values())])
    result = ingest([path], project_home)
    assert (result.rows_staged, result.by_reason[reason]) == (1, 1)
    ((pool, got, text),) = query(f"select pool, reason, {column} from {quarantined(project_home)}")
    assert (pool, got, text) == ("bad", reason, value)


def test_plausibility_bounds_live_in_the_contracts():
    from inference import contracts

    assert contracts.RAW_APY_RANGE == (-100.0, 1e6)
    assert contracts.RAW_TVL_RANGE == (0.0, 1e13)
    assert contracts.RAW_MIN_TIMESTAMP.startswith("2018-01-01")
    assert set(contracts.TIMESTAMP_UNITS) == {"s", "ms", "us"}


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_missing_optional_columns_become_null(project_home, tmp_path, kind):
    rows = [["2024-01-01T00:00:00Z", "p1", "2.5"], ["2024-01-02T00:00:00Z", "p1", "2.0"]]
    path = write_csv(tmp_path / "minimal.csv", ["timestamp", "pool", "apy"], rows)
    if kind == "parquet":
        parquet = tmp_path / "minimal.parquet"
        query(
            f"copy (select cast(timestamp as timestamptz) as timestamp, pool, "
            f"cast(apy as double) as apy from read_csv('{path}')) to '{parquet}'"
        )
        path = parquet
    result = ingest([path], project_home)
    assert (result.rows_in, result.rows_staged) == (2, 2)
    assert columns_of(stored(project_home)) == STORED_TYPES
    nulls = query(
        f"select count(chain) + count(project) + count(symbol) + count(poolMeta) + count(tvlUsd)"
        f" + count(apyBase) + count(apyReward) + count(stablecoin) + count(ilRisk)"
        f" + count(exposure), sum(apy) from {raw(project_home)}"
    )[0]
    assert nulls == (0, 4.5)


def test_typed_contract_parquet_round_trips_exactly(project_home, tmp_path):
    """`apy-runway generate` writes the contract itself: values must survive as-is."""
    source = tmp_path / "generated_snapshots.parquet"
    query(f"""
        copy (
            select
                timestamptz '2024-01-01 00:00:00+00' + to_hours(h) as "timestamp",
                'pool-' || p as pool, 'Ethereum' as chain, 'aave-v3' as project,
                'USDC' as symbol, null::varchar as poolMeta,
                1e6 / 3 + h as tvlUsd, 0.1 + h / 7 as apy, 0.1 as apyBase, h / 7 as apyReward,
                p % 2 = 0 as stablecoin, 'no' as ilRisk, 'single' as exposure
            from range(3) t(p), range(50) s(h)
        ) to '{source}'
    """)
    result = ingest([source], project_home)
    assert (result.rows_in, result.rows_staged, result.pools) == (150, 150, 3)
    differences = query(f"""
        select count(*) from (
            (select * from '{source}' except all select * from {raw(project_home)})
            union all
            (select * from {raw(project_home)} except all select * from '{source}')
        )
    """)[0][0]
    assert differences == 0


def test_several_inputs_later_input_wins(project_home, tmp_path):
    header = ["timestamp", "pool", "apy"]
    first = write_csv(tmp_path / "a.csv", header, [["2024-01-01T00:10:00Z", "p", "1.0"]])
    second = write_csv(tmp_path / "b.csv", header, [["2024-01-01T00:10:00Z", "p", "2.0"]])
    result = ingest([first, second], project_home)
    assert result.by_reason["superseded"] == 1
    assert (result.rows_in, result.rows_staged, result.rows_quarantined) == (2, 1, 1)
    assert query(f"select apy from {raw(project_home)}") == [(2.0,)]
    ((source_file, reason),) = query(f"select source_file, reason from {quarantined(project_home)}")
    assert (source_file, reason) == (str(first.resolve()), "superseded")


def test_reingest_lands_nothing_and_changes_nothing(project_home):
    first = ingest([BAD_ROWS_CSV, CHART_DIR], project_home, pools_json=POOLS_JSON)
    before = store_files(project_home)
    second = ingest([BAD_ROWS_CSV, CHART_DIR], project_home, pools_json=POOLS_JSON)
    assert (first.files_landed, second.files_landed, second.files_unchanged) == (4, 0, 4)
    assert (second.rows_in, second.rows_staged, second.rows_quarantined) == (0, 0, 0)
    assert (second.store_rows_in, second.store_rows_staged) == (first.rows_in, first.rows_staged)
    assert store_files(project_home) == before
    folders = (project_home.raw, project_home.quarantine, project_home.data)
    leftovers = [f.name for folder in folders for f in folder.rglob("*") if f.name.startswith(".")]
    assert leftovers == []


# --------------------------------------------------------------------------- errors


def _bad_input(tmp_path: Path, case: str) -> tuple[list[Path], Path | None, Path]:
    """(inputs, pools_json, the file the message must name)."""
    if case == "missing_file":
        missing = tmp_path / "nope.csv"
        return [missing], None, missing
    if case == "malformed_json":
        path = tmp_path / "chart" / "0000-bad.json"
        path.parent.mkdir()
        path.write_text('{"status": "success", "data": [{"timestamp": ')
        return [path.parent], None, path
    if case == "chart_without_data":
        path = tmp_path / "0000-nodata.json"
        path.write_text('{"status": "error", "message": "pool not found"}')
        return [path], None, path
    if case == "csv_without_pool":
        path = write_csv(tmp_path / "nopool.csv", ["timestamp", "apy"], [["2024-01-01", "1"]])
        return [path], None, path
    if case == "csv_without_timestamp":
        path = write_csv(tmp_path / "nots.csv", ["pool", "apy"], [["p", "1"]])
        return [path], None, path
    if case == "malformed_pools_json":
        path = tmp_path / "pools.json"
        path.write_text("<html>rate limited</html>")
        return [CHART_DIR], path, path
    if case == "missing_pools_json":
        path = tmp_path / "pools.json"
        return [CHART_DIR], path, path
    if case == "pools_json_as_chart":
        return [POOLS_JSON], None, POOLS_JSON
    if case == "empty_folder":
        folder = tmp_path / "empty"
        folder.mkdir()
        return [folder], None, folder
    raise AssertionError(case)


@pytest.mark.parametrize(
    "case",
    [
        "missing_file",
        "malformed_json",
        "chart_without_data",
        "csv_without_pool",
        "csv_without_timestamp",
        "malformed_pools_json",
        "missing_pools_json",
        "pools_json_as_chart",
        "empty_folder",
    ],
)
def test_bad_input_is_one_clear_error_and_writes_nothing(project_home, tmp_path, case):
    ingest([BAD_ROWS_CSV], project_home)
    before = store_files(project_home)
    inputs, pools_json, named = _bad_input(tmp_path, case)
    with pytest.raises(UserError) as error:
        # a good new file beside the bad one: it is not landed either
        ingest([*inputs, CHART_DIR], project_home, pools_json=pools_json, no_pool_metadata=True)
    message = str(error.value)
    assert "\n" not in message
    assert named.name in message
    assert store_files(project_home) == before


@pytest.mark.parametrize("limit", ["1MB", "5MB"])
def test_out_of_memory_is_one_clear_error_naming_the_limit_and_writes_nothing(project_home, limit):
    ingest([BAD_ROWS_CSV], project_home)
    before = store_files(project_home)
    with pytest.raises(UserError) as error:
        ingest([CHART_DIR], project_home, pools_json=POOLS_JSON, memory_limit=limit)
    message = str(error.value)
    assert "\n" not in message
    assert f"--memory-limit {limit}" in message and "nothing of that file was written" in message
    assert store_files(project_home) == before


@pytest.mark.parametrize(
    "value, ok",
    [
        ("2GB", True),
        ("512 MiB", True),
        ("80%", True),
        ("lots", False),
        ("2", False),
        ("-1GB", False),
    ],
)
def test_memory_limit_flag_accepts_only_memory_sizes(value, ok):
    import argparse

    from apy_runway.cli.common import memory_size

    if ok:
        assert memory_size(value) == value.strip()
    else:
        with pytest.raises(argparse.ArgumentTypeError, match="not a memory size"):
            memory_size(value)


# --------------------------------------------------------------------------- dbt


@pytest.mark.slow
def test_dbt_staging_and_daily_models_read_the_contract(project_home, tmp_path):
    from apy_runway.warehouse.dbt import run_dbt

    result = ingest([CHART_DIR, BAD_ROWS_CSV], project_home, pools_json=POOLS_JSON)
    run_dbt(
        project_home,
        "build",
        select="stg_defillama__pool_snapshots int_pool_snapshots_downsampled_to_daily",
        # run_dbt selects cautiously: singular tests that read the marts, which
        # this selection does not build, are left out
        quiet=True,
        target_path=tmp_path / "target",
    )
    con = duckdb.connect(str(project_home.warehouse), read_only=True)
    con.execute("set TimeZone = 'UTC'")
    staged_rows = con.execute("select count(*) from stg_defillama__pool_snapshots").fetchone()[0]
    assert staged_rows == result.rows_staged
    daily, expected_daily = con.execute(f"""
        select
            (select count(*) from int_pool_snapshots_downsampled_to_daily),
            (select count(distinct (pool, cast(timestamp as date)))
             from {raw(project_home)})
    """).fetchone()
    assert daily == expected_daily


# --------------------------------------------------------------------------- emptiness


def _empty_input(tmp_path: Path, case: str) -> Path:
    if case == "header_only_csv":
        return write_csv(tmp_path / "export.csv", ["timestamp", "pool", "apy"], [])
    if case == "all_rows_quarantined":
        rows = [["2099-01-01T00:00:00Z", "p", "1"], ["2024-01-01T00:00:00Z", "p", "abc"]]
        return write_csv(tmp_path / "export.csv", ["timestamp", "pool", "apy"], rows)
    if case == "empty_parquet":
        path = tmp_path / "export.parquet"
        query(
            f"copy (select timestamptz '2024-01-01' as timestamp, 'p' as pool, 1.0 as apy "
            f"where false) to '{path}'"
        )
        return path
    if case == "chart_with_empty_data":
        path = tmp_path / "0000-empty.json"
        path.write_text('{"status": "success", "data": []}')
        return path
    raise AssertionError(case)


@pytest.mark.parametrize(
    "case", ["header_only_csv", "all_rows_quarantined", "empty_parquet", "chart_with_empty_data"]
)
def test_a_file_with_no_row_to_stage_is_refused_and_appends_nothing(project_home, tmp_path, case):
    from apy_runway import cli
    from apy_runway.landing.ingest.store import read_manifest

    ingest([BAD_ROWS_CSV], project_home)
    before = {k: v for k, v in store_files(project_home).items() if "manifest" not in k}
    empty = _empty_input(tmp_path, case)
    home = str(project_home.home)
    # a non-zero exit (a UserError), the good files beside it still land
    no_metadata = "--no-pool-metadata"
    assert cli.main(["--home", home, "ingest", no_metadata, str(empty), str(CHART_DIR)]) == 2
    after = store_files(project_home)
    assert {k: v for k, v in after.items() if k in before} == before
    entries = read_manifest(project_home)
    (refused,) = [e for e in entries if e.status == "refused"]
    assert refused.name.endswith(empty.name)
    assert (refused.rows_staged, refused.raw_file) == (0, None)
    assert refused.rows_in == refused.rows_quarantined
    landed = [e for e in entries if e.status == "landed"]
    assert len(landed) == 1 + 3  # bad_rows.csv, then the three /chart files
    # nothing of the refused file in the store, nor in its quarantine
    rows = query(
        f"select count(*) from {quarantined(project_home)} where source_file like ?",
        [f"%{empty.name}"],
    )
    assert rows == [(0,)]
    # refused again when ingested again: never taken as landed
    with pytest.raises(UserError, match=empty.name):
        ingest([empty], project_home)


# --------------------------------------------------------------------------- exact paths


def _one_row_csv(path: Path, pool: str) -> Path:
    return write_csv(path, ["timestamp", "pool", "apy"], [["2024-01-01T00:00:00Z", pool, "1"]])


def _chart(path: Path) -> Path:
    item = {"timestamp": "2024-01-01T00:00:00.000Z", "tvlUsd": 1000, "apy": 2.0}
    path.write_text(json.dumps({"status": "success", "data": [item]}))
    return path


@pytest.mark.parametrize(
    ("name", "neighbour"),
    [
        ("data[1].csv", "data1.csv"),
        ("*.csv", "a.csv"),
        ("a?.csv", "ab.csv"),
        ("p{1,2}.csv", "p1.csv"),
        ("x].csv", "y.csv"),
        ("data[1].parquet", "data1.parquet"),
        ("a*.json", "ab.json"),
    ],
)
def test_inputs_are_read_by_exact_path_never_as_a_pattern(project_home, tmp_path, name, neighbour):
    """A file whose name holds a glob character reads itself only, alone or
    in its folder: `data[1].csv` read data1.csv, `*.csv` its neighbours, and a
    chart `a*.json` swallowed ab.json (its pool then quarantined as a duplicate)."""
    folder = tmp_path / "inputs"
    folder.mkdir()
    for file_name, pool in ((name, "mine"), (neighbour, "neighbour")):
        path = folder / file_name
        if path.suffix == ".json":
            _chart(path)  # the pool id is the file name
        else:
            _one_row_csv(path.with_suffix(".csv"), pool)
            if path.suffix == ".parquet":
                csv_path = path.with_suffix(".csv")
                query(f"copy (select * from read_csv('{csv_path}')) to '{path}' (format parquet)")
                csv_path.unlink()
    mine = folder / name
    result = ingest([mine], project_home, no_pool_metadata=True)
    expected = Path(name).stem if mine.suffix == ".json" else "mine"
    assert (result.rows_in, result.rows_staged) == (1, 1)
    assert query(f"select pool from {raw(project_home)}") == [(expected,)]
    # the whole folder: every file once, no duplicates, nothing quarantined
    everything = ingest([folder], project_home, no_pool_metadata=True)
    assert (everything.rows_in, everything.rows_staged, everything.rows_quarantined) == (1, 1, 0)
    assert everything.store_rows_staged == 2


def test_pools_json_is_read_by_exact_path(project_home, tmp_path):
    odd = tmp_path / "pools[1].json"
    odd.write_text(POOLS_JSON.read_text())
    (tmp_path / "pools1.json").write_text('{"status": "success", "data": []}')
    result = ingest([CHART_DIR], project_home, pools_json=odd)
    assert result.rows_staged > 0
    # the metadata of pools[1].json, not the empty pools1.json a pattern matches
    chains = query(f"select count(*) from {raw(project_home)} where chain is not null")
    assert chains[0][0] > 0


# --------------------------------------------------------------------------- every CSV line counted


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "timestamp,pool,apy\n# exported 2024-01-02\n2024-01-01T00:00:00Z,p,1\n"
            "#2024-01-01T01:00:00Z,p,2\n2024-01-01T02:00:00Z,p,3\n",
            r"2 comment line\(s\) starting with '#' \(first: line 2\)",
        ),
        (
            "timestamp,pool,chain\n2024-01-01T00:00:00Z,p,Ethereum\n",
            r"missing required column\(s\) apy",
        ),
        ("timestamp,pool,apy,apy\n2024-01-01T00:00:00Z,p,1,2\n", "names column 'apy' twice"),
        ("timestamp,pool,APY,apy\n2024-01-01T00:00:00Z,p,1,2\n", "names column 'apy' twice"),
        ("timestamp,Pool,pool,apy\n2024-01-01T00:00:00Z,p,q,2\n", "names column 'pool' twice"),
    ],
)
def test_a_csv_whose_lines_cannot_all_be_counted_is_a_file_level_error(
    project_home, tmp_path, text, message
):
    """DuckDB's sniffer dropped `#` lines uncounted, a file without `apy`
    quarantined every row with exit 0, and a duplicated header column was
    renamed apy_1 and ignored: each is now one error naming the file, and
    nothing of that ingest is landed."""
    path = tmp_path / "export.csv"
    path.write_text(text)
    with pytest.raises(UserError, match=message) as error:
        ingest([path, CHART_DIR], project_home)
    assert "export.csv" in str(error.value) and "\n" not in str(error.value)
    assert not project_home.manifest.exists()
    assert not [p for p in project_home.raw_store.rglob("*") if p.is_file()]


def test_a_hash_inside_a_row_is_data_and_quoted_fields_still_parse(project_home, tmp_path):
    path = tmp_path / "export.csv"
    path.write_text(
        "timestamp,pool,symbol,apy\n"
        '2024-01-01T00:00:00Z,p,"USDC, #1",1\n'
        "2024-01-02T00:00:00Z,q,#2,2\n"
    )
    result = ingest([path], project_home)
    assert (result.rows_in, result.rows_staged) == (2, 2)
    assert sorted(query(f"select symbol from {raw(project_home)}")) == [("#2",), ("USDC, #1",)]
