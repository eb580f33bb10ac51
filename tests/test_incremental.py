"""Incremental builds equal full rebuilds, table by table, in every scenario
of the live loop.

One home evolves scenario by scenario: each lands new files in the raw store,
then builds incrementally with dbt (var refresh_from_date, each model with its
own lookback). After each scenario a second warehouse is rebuilt in full from
a copy of the same raw store, and every relation the project builds (staging,
every intermediate model, both marts) is compared both ways: the same rows
(by key) and every value equal (both null, or |a - b| <= 1e-9 max(1, |a|, |b|)).

The full rebuilds run the SQL dbt compiled for the home's first build (a full
build: every model's full branch), in dependency order, straight in DuckDB,
on the same raw store: a dbt invocation costs seconds of start-up and parsing,
and this module would make a dozen more. The first comparison holds that
stand-in equal to dbt's own full build.

Scenarios, in order: +1 hour inside today; +1 new day (a pool's static
attribute changes); late rows for 3 days ago (new hours and a row that
supersedes a stored one); a new pool (with a back-filled history); a pool
back-filled with a year of history (the rebuild scoped to it, by the scope
file the compiled SQL reads, plus the cross-section of its days); a pool that
stops reporting (and a long-dead pool that comes back); labels maturing as the
horizon passes (the stopped pool turns dead), landed by an hourly refresh
(serving only, with its hourly tests, staging's on the changed pools) and
then a training build, which takes in everything landed since its own last
build; and a build cut at
as_of_date, incremental vs full (built in a thread beside the chain: each
dbt invocation mostly waits on one core).
"""

from __future__ import annotations

import json
import shutil
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import date, timedelta
from graphlib import TopologicalSorter
from pathlib import Path

import duckdb
import pytest
from fixtures.equality import TABLE_KEYS, compare_warehouses

from apy_runway.foundation.paths import ProjectPaths, project_paths
from apy_runway.landing.generate import generate_snapshots
from apy_runway.landing.ingest import ingest
from apy_runway.warehouse.build import incremental_build, load_build_state
from apy_runway.warehouse.session import DbtSession

pytestmark = pytest.mark.slow

START = date(2024, 1, 1)
N_DAYS = 120
LAST = START + timedelta(days=N_DAYS - 1)  # the generated data's last day
TODAY = LAST + timedelta(days=1)
HORIZON = 30
CONTRACT = (
    '"timestamp", pool, chain, project, symbol, poolMeta, tvlUsd, apy, apyBase, apyReward, '
    "stablecoin, ilRisk, exposure"
)


def sql_date(day: date) -> str:
    return f"date '{day.isoformat()}'"


def full_build_sql(paths: ProjectPaths) -> list[tuple[str, str, str]]:
    """(kind, relation, SQL) of every model, in dependency order, as dbt compiled
    them for the home's last build, which must have been a full one."""
    manifest = json.loads((paths.data / "dbt_target" / "manifest.json").read_text())
    models = {k: n for k, n in manifest["nodes"].items() if n["resource_type"] == "model"}
    graph = {k: [d for d in n["depends_on"]["nodes"] if d in models] for k, n in models.items()}
    return [
        (
            "view" if models[k]["config"]["materialized"] == "view" else "table",
            models[k]["relation_name"],
            models[k]["compiled_code"],
        )
        for k in TopologicalSorter(graph).static_order()
    ]


class Scenario:
    """One home built incrementally, a full-build twin, and the data to land."""

    def __init__(self, root: Path, dbt_vars: dict | None = None, session: DbtSession | None = None):
        self.root = root
        self.session = session
        self.paths = project_paths(root / "incremental").ensure()
        self.full = project_paths(root / "full").ensure()
        self.vars = dbt_vars or {}
        self.files = root / "files"
        self.files.mkdir(parents=True, exist_ok=True)
        self.con = duckdb.connect()
        self.con.execute("set TimeZone = 'UTC'")
        self.counter = 0
        self.full_sql: list[tuple[str, str, str]] = []

    def land(self, name: str, select_sql: str) -> None:
        """Write `select_sql` (raw contract columns) as a new file and ingest it."""
        self.counter += 1
        path = self.files / f"{self.counter:02d}_{name}.parquet"
        self.con.execute(f"copy ({select_sql}) to '{path}' (format parquet)")
        ingest([path], self.paths)

    def build_incrementally(self, selector: str | None = None, command: str = "run"):
        plan = incremental_build(
            self.paths,
            selector,
            dbt_vars=self.vars,
            quiet=True,
            command=command,
            session=self.session,
        )
        if plan.full and selector is None:  # the first build: keep its SQL
            self.full_sql = full_build_sql(self.paths)
        return plan

    def build_full(self) -> None:
        """A full rebuild of the same raw store, in a warehouse of its own (named
        like the home's, so the compiled relation names resolve)."""
        assert self.full_sql, "the home's first (full) build gives the SQL"
        self.full.warehouse.unlink(missing_ok=True)
        with duckdb.connect(str(self.full.warehouse)) as con:
            con.execute("set TimeZone = 'UTC'")
            for kind, relation, sql in self.full_sql:
                con.execute(f"create {kind} {relation} as ({sql})")

    def refresh_and_compare(self, selector: str | None = None, command: str = "run") -> dict:
        """Build incrementally and in full; compare every table."""
        plan = self.build_incrementally(selector, command)
        self.build_full()
        differences = compare_warehouses(self.paths.warehouse, self.full.warehouse)
        return {"plan": plan, "differences": differences}

    def query(self, sql: str, warehouse: Path | None = None) -> list[tuple]:
        with duckdb.connect(str(warehouse or self.paths.warehouse), read_only=True) as con:
            con.execute("set TimeZone = 'UTC'")
            return con.execute(sql).fetchall()


def assert_equal(result: dict) -> None:
    differences = result["differences"]
    assert set(differences) == set(TABLE_KEYS), sorted(differences)
    unequal = [d.summary() for d in differences.values() if not d.is_equal]
    assert not unequal, "\n".join(unequal)
    # the comparison had rows to compare in every table
    assert all(d.compared_rows > 0 for d in differences.values())


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("incremental_source") / "generated.parquet"
    generate_snapshots(path, n_pools=30, n_days=N_DAYS, seed=11, start_date=START, freq="daily")
    return path


def alive_pools(generated: Path, day: date, con: duckdb.DuckDBPyConnection) -> str:
    """SQL: the generated rows of `day` (the template of each pool still alive)."""
    return f"select * from '{generated}' where cast(\"timestamp\" as date) = {sql_date(day)}"


def hours_of(template_sql: str, day: date, hours: range, apy_shift: str = "0") -> str:
    """The template rows again on `day` at `hours` (minute 7), apy moved a little."""
    return f"""
        select * exclude (h) replace (
            timestamptz '{day.isoformat()} 00:07:00+00' + to_hours(h) as "timestamp",
            apy * (1 + 0.01 * h) + {apy_shift} as apy
        )
        from ({template_sql}) as template, range({hours.start}, {hours.stop}, {hours.step})
            as hours (h)
    """


@pytest.fixture(scope="module")
def as_of_future(generated, tmp_path_factory):
    """The as_of_date scenario, started before the chain and run beside it."""
    root = tmp_path_factory.mktemp("incremental_as_of")
    with ThreadPoolExecutor(max_workers=1) as pool:
        yield pool.submit(build_as_of, generated, root)


@pytest.fixture(scope="module")
def chain(generated, tmp_path_factory, as_of_future) -> dict:
    """Every scenario of the chain, in order; each entry keeps its comparison."""
    # dbt in this process, parsing once (tests/test_warm_refresh.py proves a warm
    # session's builds equal a cold process's); the as_of build beside it runs dbt
    # in subprocesses
    scenario = Scenario(tmp_path_factory.mktemp("incremental_chain"), session=DbtSession())
    con = scenario.con
    alive = alive_pools(generated, LAST, con)
    pools = [row[0] for row in con.execute(f"select pool from ({alive}) order by pool").fetchall()]
    changed_attribute, stopping = pools[0], pools[1]
    late_pools = pools[2:7]
    (returning,) = con.execute(
        f"select pool from '{generated}' group by pool "
        f'having max(cast("timestamp" as date)) < {sql_date(LAST - timedelta(days=HORIZON + 5))} '
        "order by pool limit 1"
    ).fetchone()
    results: dict[str, dict] = {}

    # the starting point: the history, and today's first six hours, built in
    # full by dbt and by the stand-in: the two agree
    scenario.land("history", f"select {CONTRACT} from '{generated}'")
    scenario.land("today_0_5", hours_of(alive, TODAY, range(6)))
    results["base"] = scenario.refresh_and_compare()

    # 1. +1 hour inside today
    scenario.land("today_6", hours_of(alive, TODAY, range(6, 7)))
    results["one_hour"] = scenario.refresh_and_compare()

    # 2. +1 new day; one pool's static attribute changes (all its days change)
    tomorrow = TODAY + timedelta(days=1)
    scenario.land(
        "tomorrow",
        f"""select * replace (
                case when pool = '{changed_attribute}'
                    then case when ilRisk = 'yes' then 'no' else 'yes' end
                    else ilRisk end as ilRisk)
            from ({hours_of(alive, tomorrow, range(4))})""",
    )
    results["new_day"] = scenario.refresh_and_compare()
    results["new_day"]["attribute_pool"] = changed_attribute

    # 3. late rows for 3 days ago: a new hour, and a replacement of a stored row
    three_days_ago = tomorrow - timedelta(days=3)
    in_list = ", ".join(f"'{p}'" for p in late_pools)
    stored = (
        f"select * from '{generated}' where cast(\"timestamp\" as date) = "
        f"{sql_date(three_days_ago)} and pool in ({in_list})"
    )
    scenario.land(
        "late_rows",
        f"""select {CONTRACT} from ({hours_of(stored, three_days_ago, range(12, 13))})
            union all
            select * replace (apy * 3 as apy) from ({stored})""",
    )
    results["late_rows"] = scenario.refresh_and_compare()
    results["late_rows"]["replaced_rows"] = con.execute(
        f"select count(*) from ({stored})"
    ).fetchone()[0]
    results["late_rows"]["superseded"] = scenario.query(
        f"select count(*) from read_parquet('{scenario.paths.superseded_rows}')",
    )

    # 4. a new pool, with a back-filled daily history and today's hours
    new_pool = f"""
        select * replace ('new-pool-0001' as pool, apy + 1 as apy)
        from ({alive}) where pool = '{pools[-1]}'
    """
    scenario.land(
        "new_pool",
        f"""select * exclude (d) replace (
                timestamptz '{(TODAY - timedelta(days=20)).isoformat()} 23:01:00+00'
                    + to_days(d) as "timestamp",
                apy + d / 10 as apy)
            from ({new_pool}), range(0, 20) as days (d)
            union all {hours_of(new_pool, TODAY, range(7))}
            union all {hours_of(new_pool, tomorrow, range(4))}""",
    )
    results["new_pool"] = scenario.refresh_and_compare()

    # 4b. a pool back-filled with a year of history (before the generated
    # data's start): only it is rebuilt from its first day (the scope file),
    # the other pools' rolling features keep their rows; every pool's
    # cross-section of those days is rebuilt
    year_pool = f"""
        select * replace ('backfill-year-0001' as pool, apy * 2 as apy)
        from ({alive}) where pool = '{pools[-2]}'
    """
    scenario.land(
        "backfilled_year",
        f"""select * exclude (d) replace (
                timestamptz '{(TODAY - timedelta(days=365)).isoformat()} 21:00:00+00'
                    + to_days(d) as "timestamp",
                apy * (1 + 0.01 * sin(d)) as apy)
            from ({year_pool}), range(0, 367) as days (d)""",
    )
    results["backfilled_year"] = scenario.refresh_and_compare()
    scope = scenario.paths.data / "refresh_scope.parquet"
    results["backfilled_year"]["scope"] = scenario.query(
        f"select pool_id, from_date from read_parquet('{scope}')"
    )
    results["backfilled_year"]["compiled"] = next(
        path
        for path in (scenario.paths.data / "dbt_target").rglob("int_pool_days_rolling_features.sql")
        if "compiled" in path.parts
    ).read_text()

    # 5. a pool stops reporting; a long-dead pool comes back
    day_three = tomorrow + timedelta(days=1)
    last_seen = f"""
        select * from '{generated}' where pool = '{returning}'
        qualify row_number() over (order by "timestamp" desc) = 1
    """
    scenario.land(
        "stop_and_return",
        f"""select * from ({hours_of(alive, day_three, range(3))})
                where pool != '{stopping}'
            union all {hours_of(last_seen, day_three, range(3))}""",
    )
    results["stop_and_return"] = scenario.refresh_and_compare()
    results["stop_and_return"]["pools"] = (stopping, returning)

    # 6. labels mature: a horizon and more of days lands, an hourly refresh
    # builds the serving models (hourly tests), then a training build
    later = f"select * from ({alive}) where pool != '{stopping}'"
    scenario.land(
        "horizon_of_days",
        f"""select * exclude (d) replace (
                timestamptz '{day_three.isoformat()} 23:02:00+00' + to_days(d) as "timestamp",
                apy * (1 + 0.02 * sin(d)) as apy)
            from ({later}), range(1, {HORIZON + 4}) as days (d)""",
    )
    results["serving"] = scenario.build_incrementally("hourly_refresh", "build")
    results["serving_unique_test"] = next(
        text
        for path in (scenario.paths.data / "dbt_target").rglob(
            "_defillama__models.yml/unique_combination_of_columns_*.sql"
        )
        if "compiled" in path.parts and "hash(pool_id, snapshot_hour)" in (text := path.read_text())
    )
    results["labels_mature"] = scenario.refresh_and_compare("training", "build")
    results["labels_mature"]["stopping"] = stopping
    results["state"] = load_build_state(scenario.paths)
    results["scenario"] = scenario
    return results


def test_the_full_rebuild_stand_in_equals_dbts_full_build(chain):
    assert chain["base"]["plan"].full
    assert_equal(chain["base"])


@pytest.mark.parametrize(
    "name",
    [
        "one_hour",
        "new_day",
        "late_rows",
        "new_pool",
        "backfilled_year",
        "stop_and_return",
        "labels_mature",
    ],
)
def test_incremental_build_equals_a_full_rebuild(chain, name):
    result = chain[name]
    assert not result["plan"].full, result["plan"]
    assert result["plan"].refresh_from_date is not None
    assert_equal(result)


def test_each_scenario_rebuilt_from_its_earliest_new_day(chain):
    assert chain["one_hour"]["plan"].refresh_from_date == TODAY.isoformat()
    assert chain["new_day"]["plan"].refresh_from_date == (TODAY + timedelta(days=1)).isoformat()
    assert chain["late_rows"]["plan"].refresh_from_date == (TODAY - timedelta(days=2)).isoformat()
    assert chain["new_pool"]["plan"].refresh_from_date == (TODAY - timedelta(days=20)).isoformat()
    year_ago = TODAY - timedelta(days=365)
    assert chain["backfilled_year"]["plan"].refresh_from_date == year_ago.isoformat()
    # the year's back-fill scoped the rebuild to its one pool, from its first day
    assert chain["backfilled_year"]["scope"] == [("backfill-year-0001", year_ago)]
    compiled = chain["backfilled_year"]["compiled"]
    assert "refresh_scope.parquet" in compiled and f"date '{year_ago}'" in compiled
    # the training build takes in everything landed since its own last build
    assert (
        chain["labels_mature"]["plan"].refresh_from_date == (TODAY + timedelta(days=3)).isoformat()
    )
    assert chain["serving"].refresh_from_date == (TODAY + timedelta(days=3)).isoformat()
    # its hourly tests on staging checked the changed pools' rows only (the scope file)
    unique_test = chain["serving_unique_test"]
    assert f"snapshot_date >= cast('{TODAY + timedelta(days=3)}' as date)" in unique_test
    assert "pool_id in (select pool_id from read_parquet(" in unique_test
    assert "refresh_scope.parquet" in unique_test
    assert chain["state"]["serving"]["landing_order"] == chain["state"]["training"]["landing_order"]


def test_the_scenarios_changed_what_they_claim(chain):
    """A test of the test: each scenario really moved the tables it targets."""
    scenario = chain["scenario"]
    # the supersede went through the store's list and staging's anti-join
    assert chain["late_rows"]["superseded"][0][0] == chain["late_rows"]["replaced_rows"] > 0
    # the attribute change reached the pool's oldest day
    attribute_pool = chain["new_day"]["attribute_pool"]
    assert scenario.query(
        "select count(distinct il_risk) from int_pool_days_featurized "
        f"where pool_id = '{attribute_pool}'"
    ) == [(1,)]
    # the returning pool's silent days are calendar rows, its old labels changed
    stopping, returning = chain["stop_and_return"]["pools"]
    gap_days = scenario.query(
        "select count(*) from int_pool_days_densified "
        f"where pool_id = '{returning}' and not is_observed"
    )[0][0]
    assert gap_days > HORIZON
    # the stopped pool is dead once a horizon passed: its last days get label 0
    dead = scenario.query(
        "select count(*) from int_pool_days_labeled "
        f"where pool_id = '{stopping}' and is_pool_dead and is_apy_kept = 0"
    )[0][0]
    assert dead > 0
    # labels matured: the days of the first scenarios are labelled now
    labelled_today = scenario.query(
        f"select count(*) from int_pool_days_labeled where snapshot_date = {sql_date(TODAY)} "
        "and is_apy_kept is not null"
    )[0][0]
    assert labelled_today > 10


def test_the_comparison_sees_a_difference(chain, tmp_path):
    """A test of the test: one changed value in one table is reported."""
    scenario = chain["scenario"]
    copy = tmp_path / "changed.duckdb"
    shutil.copy(scenario.full.warehouse, copy)
    with duckdb.connect(str(copy)) as con:
        con.execute(
            "update int_pool_days_rolling_features set apy_rolling_30d_std = "
            "apy_rolling_30d_std * (1 + 1e-6) where rowid = (select min(rowid) from "
            "int_pool_days_rolling_features where apy_rolling_30d_std > 0)"
        )
        con.execute("delete from latest_features where rowid = 0")
    differences = compare_warehouses(scenario.full.warehouse, copy)
    rolling = differences["int_pool_days_rolling_features"]
    assert not rolling.is_equal and rolling.column_mismatches["apy_rolling_30d_std"] == 1
    assert differences["latest_features"].rows_only_left == 1
    assert differences["int_pool_days_featurized"].is_equal


def build_as_of(generated: Path, root: Path) -> dict:
    """An as_of_date build: the history and two later files land; the build is
    cut in the middle of them, incrementally and in full."""
    cut = TODAY + timedelta(days=1)
    scenario = Scenario(root, {"as_of_date": cut.isoformat()})
    alive = alive_pools(generated, LAST, scenario.con)
    scenario.land("history", f"select {CONTRACT} from '{generated}'")
    scenario.build_incrementally()
    scenario.land("today", hours_of(alive, TODAY, range(0, 24, 6)))
    scenario.land(
        "after_the_cut",
        f"""select * exclude (d) replace (
                timestamptz '{cut.isoformat()} 23:02:00+00' + to_days(d) as "timestamp")
            from ({alive}), range(0, 3) as days (d)""",
    )
    return {"result": scenario.refresh_and_compare(), "scenario": scenario, "cut": cut}


@pytest.fixture(scope="module")
def as_of(as_of_future: Future) -> dict:
    return as_of_future.result()


def test_an_as_of_date_build_refreshes_like_a_full_one(as_of):
    result = as_of["result"]
    assert not result["plan"].full and result["plan"].refresh_from_date == TODAY.isoformat()
    assert_equal(result)
    # the cut holds: nothing after it was built
    assert as_of["scenario"].query("select max(snapshot_date) from int_pool_days_featurized") == [
        (as_of["cut"],)
    ]
