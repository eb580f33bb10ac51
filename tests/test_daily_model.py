"""The daily model on hand-made hourly snapshots: the `last`, `mean` and
`median` modes of var daily_downsampling, UTC day boundaries, strings from
the day's last snapshot, and the as_of_date cut in staging.
"""

from __future__ import annotations

import math
import shutil
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime

import duckdb
import pytest

from apy_runway.foundation.console import UserError
from apy_runway.foundation.paths import project_paths
from apy_runway.landing.ingest import ingest
from apy_runway.warehouse.dbt import run_dbt

pytestmark = pytest.mark.slow

# timestamp, pool, chain, project, symbol, tvlUsd, apy, apyBase, apyReward, stablecoin
SNAPSHOTS = [
    # pool a, 2024-01-01: three hours; the last one renames the symbol and has
    # no apyBase; one more hour on 2024-01-02
    ("2024-01-01 01:00:00+00", "a", "Ethereum", "aave-v3", "X", 100.0, 1.0, 1.0, 0.0, True),
    ("2024-01-01 05:00:00+00", "a", "Ethereum", "aave-v3", "X", 200.0, 2.0, 2.0, 0.0, True),
    ("2024-01-01 23:00:00+00", "a", "Ethereum", "aave-v3", "Y", 600.0, 6.0, None, 6.0, True),
    ("2024-01-02 12:00:00+00", "a", "Ethereum", "aave-v3", "Y", 300.0, 4.0, 4.0, 0.0, True),
    # pool b: local times in other zones land on their UTC day
    # 01:30+03 on Jan 2 is 22:30 UTC on Jan 1; 23:30-02 on Jan 2 is 01:30 UTC on Jan 3
    ("2024-01-02 01:30:00+03", "b", "Arbitrum", "gmx", "GLP", 50.0, 10.0, 10.0, None, None),
    ("2024-01-02 23:30:00-02", "b", "Arbitrum", "gmx", "GLP", 70.0, 20.0, 20.0, None, None),
]
MODES = ("last", "mean", "median")
AS_OF_DATE = "2024-01-02"  # the median build is also cut: pool b's Jan 3 row goes


@pytest.fixture(scope="module")
def source_home(tmp_path_factory):
    paths = project_paths(tmp_path_factory.mktemp("daily_source")).ensure()
    with duckdb.connect() as con:
        con.execute("set TimeZone = 'UTC'")
        con.execute("""
            create table snapshots (
                "timestamp" timestamptz, pool varchar, chain varchar, project varchar,
                symbol varchar, tvlUsd double, apy double, apyBase double,
                apyReward double, stablecoin boolean
            )
        """)
        con.executemany("insert into snapshots values (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", SNAPSHOTS)
        con.execute(f"""
            copy (
                select "timestamp", pool, chain, project, symbol,
                    cast(null as varchar) as poolMeta, tvlUsd, apy, apyBase, apyReward,
                    stablecoin, cast(null as varchar) as ilRisk,
                    cast(null as varchar) as exposure
                from snapshots
            ) to '{paths.landing / "snapshots.parquet"}' (format parquet)
        """)
    ingest([paths.landing / "snapshots.parquet"], paths)
    return paths


def build_daily(source, home, dbt_vars: dict) -> dict:
    paths = project_paths(home).ensure()
    shutil.copytree(source.raw, paths.raw, dirs_exist_ok=True)
    run_dbt(
        paths,
        "run",
        dbt_vars=dbt_vars,
        select="stg_defillama__pool_snapshots int_pool_snapshots_downsampled_to_daily",
        target_path=paths.data / "dbt_target",
        quiet=True,
    )
    with duckdb.connect(str(paths.warehouse), read_only=True) as con:
        con.execute("set TimeZone = 'UTC'")
        cursor = con.execute(
            "select * from int_pool_snapshots_downsampled_to_daily order by pool_id, snapshot_date"
        )
        names = [column[0] for column in cursor.description]
        return {
            (row[names.index("pool_id")], row[names.index("snapshot_date")]): dict(
                zip(names, row, strict=True)
            )
            for row in cursor.fetchall()
        }


@pytest.fixture(scope="module")
def daily_by_mode(source_home, tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("daily_modes")
    runs = {mode: {"daily_downsampling": mode} for mode in MODES}
    runs["median"]["as_of_date"] = AS_OF_DATE
    with ThreadPoolExecutor(max_workers=len(runs)) as pool:
        futures = {
            mode: pool.submit(build_daily, source_home, root / mode, dbt_vars)
            for mode, dbt_vars in runs.items()
        }
        return {mode: future.result() for mode, future in futures.items()}


A1 = ("a", date(2024, 1, 1))
B1 = ("b", date(2024, 1, 1))
B3 = ("b", date(2024, 1, 3))


@pytest.mark.parametrize(
    "mode, apy, apy_base, tvl_usd, apy_reward",
    [
        ("last", 6.0, None, 600.0, 6.0),  # the 23:00 snapshot as it is, null included
        ("mean", 3.0, 1.5, 300.0, 2.0),  # aggregates ignore the null apyBase
        ("median", 2.0, 1.5, 200.0, 0.0),
    ],
)
def test_measures_follow_the_downsampling_mode(
    daily_by_mode, mode, apy, apy_base, tvl_usd, apy_reward
):
    row = daily_by_mode[mode][A1]
    assert row["apy"] == pytest.approx(apy)
    assert row["tvl_usd"] == pytest.approx(tvl_usd)
    assert row["apy_reward"] == pytest.approx(apy_reward)
    if apy_base is None:
        assert row["apy_base"] is None or math.isnan(row["apy_base"])
    else:
        assert row["apy_base"] == pytest.approx(apy_base)


@pytest.mark.parametrize("mode", MODES)
def test_strings_and_counts_come_from_the_whole_day_and_its_last_snapshot(daily_by_mode, mode):
    row = daily_by_mode[mode][A1]
    assert row["symbol"] == "Y"
    assert row["snapshot_count"] == 3
    assert row["last_snapshot_at"] == datetime(2024, 1, 1, 23, tzinfo=UTC)
    assert row["is_stablecoin"] is True
    assert daily_by_mode[mode][("a", date(2024, 1, 2))]["snapshot_count"] == 1


def test_snapshots_land_on_their_utc_day(daily_by_mode):
    rows = daily_by_mode["last"]
    assert rows[B1]["apy"] == 10.0
    assert rows[B1]["last_snapshot_at"] == datetime(2024, 1, 1, 22, 30, tzinfo=UTC)
    assert rows[B3]["apy"] == 20.0
    assert ("b", date(2024, 1, 2)) not in rows
    assert len(rows) == 4


def test_as_of_date_cuts_the_history_in_staging(daily_by_mode):
    rows = daily_by_mode["median"]
    assert B3 not in rows
    assert max(day for _, day in rows) == date(2024, 1, 2)
    assert set(rows) == {A1, ("a", date(2024, 1, 2)), B1}


def test_an_unknown_mode_is_refused_when_dbt_parses_the_project(source_home):
    with pytest.raises(
        UserError, match="daily_downsampling must be last, mean or median, got 'first'"
    ):
        run_dbt(
            source_home,
            "parse",
            dbt_vars={"daily_downsampling": "first"},
            target_path=source_home.data / "dbt_target_bad",
            quiet=True,
        )
