"""The embedded data generator: determinism, the long-export contract, and the
realism a naive generator would not have (gaps, spikes, cliffs, deaths, late
launches, regimes, a sensible 30-day "kept" rate). Small sizes keep it fast."""

from __future__ import annotations

from datetime import date

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from apy_runway import cli
from apy_runway.landing.generate import PROJECTS, SCHEMA, generate_snapshots

N_POOLS = 80
N_DAYS = 120
START = date(2024, 1, 1)
SEED = 42

EXPECTED_DUCKDB_TYPES = {
    "timestamp": "TIMESTAMP WITH TIME ZONE",
    "pool": "VARCHAR",
    "chain": "VARCHAR",
    "project": "VARCHAR",
    "symbol": "VARCHAR",
    "poolMeta": "VARCHAR",
    "tvlUsd": "DOUBLE",
    "apy": "DOUBLE",
    "apyBase": "DOUBLE",
    "apyReward": "DOUBLE",
    "stablecoin": "BOOLEAN",
    "ilRisk": "VARCHAR",
    "exposure": "VARCHAR",
}


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """One hourly file (80 pools x 120 days) shared by the read-only checks."""
    path = tmp_path_factory.mktemp("generated") / "snapshots.parquet"
    result = generate_snapshots(
        path, n_pools=N_POOLS, n_days=N_DAYS, seed=SEED, start_date=START, freq="hourly"
    )
    return path, result


@pytest.fixture
def con(generated):
    path, _ = generated
    connection = duckdb.connect()
    connection.execute("set TimeZone = 'UTC'")
    connection.execute(f"create view snapshots as select * from read_parquet('{path}')")
    yield connection
    connection.close()


def scalar(con, sql: str):
    return con.execute(sql).fetchone()[0]


# ----------------------------------------------------------------- determinism


def test_same_seed_gives_identical_content_whatever_the_chunking(generated, tmp_path):
    path, _ = generated
    again = tmp_path / "again.parquet"
    generate_snapshots(
        again, n_pools=N_POOLS, n_days=N_DAYS, seed=SEED, start_date=START, chunk_pools=7
    )
    assert pq.read_table(again).equals(pq.read_table(path))


def test_different_seed_gives_different_data(generated, tmp_path):
    path, _ = generated
    other = tmp_path / "other.parquet"
    generate_snapshots(other, n_pools=N_POOLS, n_days=N_DAYS, seed=SEED + 1, start_date=START)
    first, second = pq.read_table(path), pq.read_table(other)
    assert set(first["pool"].to_pylist()).isdisjoint(second["pool"].to_pylist())
    assert not np.allclose(first["apy"].to_numpy()[:1000], second["apy"].to_numpy()[:1000])


def test_result_reports_rows_pools_and_time(generated):
    path, result = generated
    assert result["rows"] == pq.ParquetFile(path).metadata.num_rows
    assert result["pools"] == N_POOLS
    assert result["seconds"] > 0


# ----------------------------------------------------------------- contract


def test_schema_is_the_long_export_contract(generated, con):
    path, _ = generated
    assert pq.read_schema(path).remove_metadata() == SCHEMA
    assert pq.read_schema(path).field("timestamp").type == pa.timestamp("us", tz="UTC")
    described = {row[0]: row[1] for row in con.execute("describe snapshots").fetchall()}
    assert described == EXPECTED_DUCKDB_TYPES


def test_timestamps_are_utc_within_the_hour_and_unique_per_pool_hour(con):
    first, last = con.execute("select min(timestamp), max(timestamp) from snapshots").fetchone()
    assert first.utcoffset().total_seconds() == 0
    assert first.date() == START
    assert (last.date() - START).days == N_DAYS - 1
    # DefiLlama's hourly job writes a few minutes after the hour
    assert scalar(con, "select max(extract('minute' from timestamp)) from snapshots") < 6
    assert (
        scalar(
            con,
            """
        select count(*) from (
            select pool, date_trunc('hour', timestamp) from snapshots
            group by all having count(*) > 1)""",
        )
        == 0
    )


def test_values_are_percent_finite_and_consistent(con):
    assert scalar(con, "select count(*) from snapshots where apy is null or not isfinite(apy)") == 0
    assert scalar(con, "select min(apy) from snapshots") >= 0
    assert scalar(con, "select count(*) from snapshots where tvlUsd is null or tvlUsd < 0") == 0
    # percent, not fractions: typical pools pay a few percent
    assert 1 < scalar(con, "select median(apy) from snapshots") < 30
    # apy = apyBase + apyReward where both are known, else the known part
    assert (
        scalar(
            con,
            """
        select max(abs(apy - coalesce(apyBase, 0) - coalesce(apyReward, 0)))
        from snapshots""",
        )
        < 1e-4
    )
    # pools without reward programmes never report apyReward
    assert (
        scalar(
            con,
            """
        select count(*) from (select pool from snapshots group by pool
                              having count(apyReward) = 0)""",
        )
        >= 5
    )
    assert 0.5 < scalar(con, "select avg((poolMeta is null)::int) from snapshots") < 1
    assert (
        scalar(
            con,
            "select count(*) from snapshots where ilRisk not in ('yes', 'no')"
            " or exposure not in ('single', 'multi') or stablecoin is null",
        )
        == 0
    )


def test_pool_attributes_are_static_and_ids_uuid_like(con):
    assert (
        scalar(
            con,
            """
        select count(*) from (
            select pool from snapshots group by pool
            having count(distinct (chain, project, symbol, stablecoin, ilRisk, exposure)) > 1
        )""",
        )
        == 0
    )
    assert scalar(con, "select count(distinct pool) from snapshots") == N_POOLS
    assert (
        scalar(
            con,
            """select count(*) from snapshots where not regexp_full_match(
        pool, '[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}')""",
        )
        == 0
    )


# ----------------------------------------------------------------- realism


def test_regimes_several_chains_projects_and_both_stable_kinds(con):
    assert scalar(con, "select count(distinct chain) from snapshots") >= 5
    assert scalar(con, "select count(distinct project) from snapshots") >= 12
    assert scalar(con, "select count(distinct stablecoin) from snapshots") == 2
    # stablecoin pools are calmer: lower day-to-day spread of log APY (liquid
    # staking is calm without being a stablecoin, so it stays out of the comparison)
    staking = ", ".join(f"'{name}'" for name, spec in PROJECTS.items() if spec[0] == "staking")
    calm, wild = con.execute(f"""
        with daily as (
            select pool, stablecoin, cast(timestamp as date) as day, median(apy) as apy
            from snapshots where apy > 0 and project not in ({staking}) group by all),
        changes as (
            select stablecoin, abs(ln(apy / lag(apy) over (partition by pool order by day)))
                as change
            from daily)
        select median(change) filter (where stablecoin),
               median(change) filter (where not stablecoin)
        from changes""").fetchone()
    assert calm < wild


def test_missing_hours_and_missing_whole_days_exist(con):
    hour_gaps = scalar(
        con,
        """
        with steps as (
            select timestamp - lag(timestamp) over (partition by pool order by timestamp)
                as step
            from snapshots)
        select count(*) from steps
        where step > interval 90 minutes and step < interval 3 hours""",
    )
    assert hour_gaps > 100
    missing_days = scalar(
        con,
        """
        with days as (
            select pool, cast(timestamp as date) as day from snapshots group by all),
        steps as (
            select day - lag(day) over (partition by pool order by day) as step from days)
        select count(*) from steps where step >= 2""",
    )
    assert missing_days >= 10


def test_one_hour_spikes_exist(con):
    spikes = scalar(
        con,
        """
        with neighbours as (
            select pool, apy, timestamp,
                lag(apy) over w as before, lead(apy) over w as after,
                date_trunc('hour', timestamp)
                    - date_trunc('hour', lag(timestamp) over w) as back,
                date_trunc('hour', lead(timestamp) over w)
                    - date_trunc('hour', timestamp) as ahead
            from snapshots
            window w as (partition by pool order by timestamp))
        select count(*) from neighbours
        where back = interval 1 hour and ahead = interval 1 hour
            and apy > 3 * greatest(before, after) and before > 0""",
    )
    assert spikes >= 20


def test_late_launching_and_dying_pools_exist(con):
    late, dead = con.execute("""
        with spans as (
            select pool, min(timestamp) as first_at, max(timestamp) as last_at
            from snapshots group by pool),
        bounds as (select min(first_at) as start_at, max(last_at) as end_at from spans)
        select count(*) filter (where first_at > start_at + interval 14 days),
               count(*) filter (where last_at < end_at - interval 14 days)
        from spans cross join bounds""").fetchone()
    assert late >= 3
    assert dead >= 2


def test_reward_cliffs_exist(con):
    # apyReward was clearly positive, then is 0 or null for the rest of the pool's
    # history (at least two weeks of snapshots after the last positive reward)
    cliffs = scalar(
        con,
        """
        with last_reward as (
            select pool, max(timestamp) filter (where apyReward > 0.01) as last_paid_at,
                max(apyReward) as peak, max(timestamp) as last_at
            from snapshots group by pool)
        select count(*) from last_reward
        where peak > 0.5 and last_at > last_paid_at + interval 14 days""",
    )
    assert cliffs >= 3


def _daily_labels(con, horizon: int = 30, threshold: float = -0.2):
    """is_apy_kept per pool-day, as the dbt label defines it (last snapshot of
    the day, median of the observed days d+1..d+H, half coverage, dead pools 0)."""
    return con.execute(f"""
        with ranked as (
            select pool, project, cast(timestamp as date) as day, apy,
                row_number() over (partition by pool, cast(timestamp as date)
                                   order by timestamp desc) as recency
            from snapshots),
        daily as (select * exclude (recency) from ranked where recency = 1),
        bounds as (select max(day) as data_end from daily),
        spans as (select pool, max(day) as pool_end from daily group by pool),
        future as (
            select daily.*, pool_end, data_end,
                median(apy) over w as apy_future, count(apy) over w as future_days
            from daily
            inner join spans using (pool)
            cross join bounds
            window w as (partition by pool order by day range between
                interval 1 day following and interval {horizon} days following))
        select project,
            case
                when pool_end < day + {horizon} and data_end >= day + {horizon} then 0
                when day + {horizon} > data_end then null
                when future_days < {horizon} / 2 then null
                when apy_future / apy - 1 < {threshold} then 0
                else 1
            end as is_apy_kept
        from future where apy > 0""").fetchall()


def test_thirty_day_kept_rate_is_in_a_sensible_band_and_differs_by_regime(con):
    labels = [(project, kept) for project, kept in _daily_labels(con) if kept is not None]
    assert len(labels) > 3000
    rate = np.mean([kept for _, kept in labels])
    assert 0.5 <= rate <= 0.85
    # regimes carry signal: lending and staking hold their APY more often than
    # DEX LPs and farms
    calm = [kept for project, kept in labels if PROJECTS[project][0] in ("lending", "staking")]
    wild = [kept for project, kept in labels if PROJECTS[project][0] in ("dex-lp", "farm")]
    assert np.mean(calm) > np.mean(wild) + 0.03


# ----------------------------------------------------------------- daily and errors


def test_daily_frequency_gives_one_late_evening_snapshot_per_pool_day(tmp_path):
    path = tmp_path / "daily.parquet"
    result = generate_snapshots(path, n_pools=20, n_days=60, seed=5, freq="daily")
    con = duckdb.connect()
    con.execute("set TimeZone = 'UTC'")
    rows, pool_days, hours = con.execute(f"""
        select count(*), count(distinct (pool, cast(timestamp as date))),
            list(distinct extract('hour' from timestamp))
        from read_parquet('{path}')""").fetchone()
    assert rows == pool_days == result["rows"]
    assert hours == [23]
    assert pool_days < 20 * 60  # launches, deaths and missing days


@pytest.mark.parametrize(
    "bad",
    [
        {"n_pools": 0},
        {"n_days": 1},
        {"freq": "weekly"},
        {"chunk_pools": 0},
    ],
)
def test_bad_arguments_raise_value_error(tmp_path, bad):
    arguments = {"n_pools": 3, "n_days": 10} | bad
    with pytest.raises(ValueError):
        generate_snapshots(tmp_path / "x.parquet", **arguments)
    assert not (tmp_path / "x.parquet").exists()


# ----------------------------------------------------------------- CLI


def test_cli_generate_writes_the_landing_file(project_home):
    home = str(project_home.home)
    code = cli.main(
        [
            "--home",
            home,
            "generate",
            "--pools",
            "4",
            "--days",
            "40",
            "--seed",
            "7",
            "--start",
            "2024-03-01",
        ]
    )
    assert code == 0
    out = project_home.landing / "generated_snapshots.parquet"
    table = pq.read_table(out)
    assert len(set(table["pool"].to_pylist())) == 4
    assert min(table["timestamp"].to_pylist()).date() == date(2024, 3, 1)
    assert cli.main(["--home", home, "generate", "--start", "March 1st"]) == 2
