"""A warm refresh process equals cold ones, table by table.

One home is refreshed hour after hour by a DbtSession (dbt in this process,
its parsed manifest kept between builds: `apy-runway refresh --every 1h`);
a twin home, landed the same files, by a dbt subprocess per build (each one
parsing, as a refresh started by a timer). After every step both warehouses
hold the same rows and values in every table. The warm process parses once:
the per-refresh first day reaches the compiled SQL through the environment,
not the vars, and only a change to the project's files re-parses.
"""

from __future__ import annotations

import shutil
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pytest
from fixtures.dbt_nodes import SERVING_MODELS
from fixtures.equality import compare_warehouses

from apy_runway.foundation.console import UserError
from apy_runway.foundation.paths import project_paths
from apy_runway.landing.generate import generate_snapshots
from apy_runway.landing.ingest import ingest
from apy_runway.warehouse.build import incremental_build
from apy_runway.warehouse.dbt import dbt_target_dir, run_dbt
from apy_runway.warehouse.session import DbtSession

pytestmark = pytest.mark.slow

START = date(2024, 1, 1)
N_DAYS = 60
TODAY = START + timedelta(days=N_DAYS)


def hours_of(template: str, day: date, hours: range) -> str:
    return f"""
        select * exclude (h) replace (
            timestamptz '{day.isoformat()} 00:07:00+00' + to_hours(h) as "timestamp",
            apy * (1 + 0.01 * h) as apy)
        from ({template}) as template, range({hours.start}, {hours.stop}) as hours (h)
    """


@pytest.fixture(scope="module")
def steps(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("warm_refresh")
    generated = root / "generated.parquet"
    generate_snapshots(generated, n_pools=20, n_days=N_DAYS, seed=5, start_date=START, freq="daily")
    cold, warm = project_paths(root / "cold").ensure(), project_paths(root / "warm").ensure()
    session = DbtSession()
    con = duckdb.connect()
    con.execute("set TimeZone = 'UTC'")
    last_day = (
        f"select * from '{generated}' "
        f"where cast(\"timestamp\" as date) = date '{TODAY - timedelta(days=1)}'"
    )
    results: dict = {"session": session, "warm": warm}

    def step(name: str, sql: str) -> None:
        path = root / f"{len(results):02d}_{name}.parquet"
        con.execute(f"copy ({sql}) to '{path}' (format parquet)")
        for home in (cold, warm):
            ingest([path], home)
        cold_plan = incremental_build(cold, "hourly_refresh", quiet=True)
        warm_plan = incremental_build(warm, "hourly_refresh", quiet=True, session=session)
        compiled = next(
            path
            for path in dbt_target_dir(warm).rglob("int_pool_days_cross_sectional_features.sql")
            if "compiled" in path.parts
        )
        results[name] = {
            "plans": (cold_plan, warm_plan),
            "differences": compare_warehouses(cold.warehouse, warm.warehouse),
            "compiled": compiled.read_text(),
            "parses": session.parses,
        }

    step("history", f"select * from '{generated}'")
    step("one_hour", hours_of(last_day, TODAY, range(1)))
    step("next_hour", hours_of(last_day, TODAY, range(1, 2)))
    step("new_day", hours_of(last_day, TODAY + timedelta(days=1), range(3)))
    late = f"select * from ({last_day}) order by pool limit 4"
    step("late_rows", hours_of(late, TODAY - timedelta(days=3), range(12, 13)))
    backfill = (
        f"select * replace ('backfilled-pool' as pool) from ({last_day}) order by pool limit 1"
    )
    step(
        "backfill",
        f"""select * exclude (d) replace (
                timestamptz '{START.isoformat()} 22:00:00+00' + to_days(d) as "timestamp",
                apy + d / 10 as apy)
            from ({backfill}), range(0, {N_DAYS + 2}) as days (d)""",
    )
    return results


STEPS = ["history", "one_hour", "next_hour", "new_day", "late_rows", "backfill"]


@pytest.mark.parametrize("name", STEPS)
def test_a_warm_process_builds_what_cold_processes_build(steps, name):
    cold_plan, warm_plan = steps[name]["plans"]
    assert cold_plan == warm_plan
    assert cold_plan.full == (name == "history")
    differences = steps[name]["differences"]
    assert set(differences) == SERVING_MODELS, sorted(differences)
    unequal = [d.summary() for d in differences.values() if not d.is_equal]
    assert not unequal, "\n".join(unequal)
    assert all(d.compared_rows > 0 for d in differences.values())


def test_the_warm_process_parsed_once_and_compiled_each_hours_day(steps):
    assert [steps[name]["parses"] for name in STEPS] == [1] * len(STEPS)
    assert steps["session"].invocations == len(STEPS)
    for name in STEPS[1:]:
        day = steps[name]["plans"][1].refresh_from_date
        assert f"snapshot_date >= date '{day}'" in steps[name]["compiled"], name
    assert "snapshot_date >= date" not in steps["history"]["compiled"]


def test_a_changed_project_file_is_parsed_again_and_a_failure_is_shown_in_full(
    steps, tmp_path, capsys
):
    """Only a change to the project's files (here a new singular test, which
    fails) re-parses; the failure names the node, its error and the log."""
    project = tmp_path / "dbt_project"
    source = Path(__file__).resolve().parents[1] / "dbt_project"
    shutil.copytree(source, project, ignore=shutil.ignore_patterns("target", "logs"))
    session, paths = DbtSession(), steps["warm"]
    listed = run_dbt(paths, "ls", project_dir=project, session=session, quiet=True)
    run_dbt(paths, "ls", project_dir=project, session=session, quiet=True)
    assert session.parses == 1 and listed.returncode == 0
    (project / "tests" / "always_fails.sql").write_text("select 1 as broken_row\n")
    run_dbt(paths, "ls", project_dir=project, session=session, quiet=True)
    assert session.parses == 2
    run_dbt(paths, "ls", project_dir=project, session=session, refresh_from_date="2024-01-02")
    assert session.parses == 2
    with pytest.raises(UserError) as warm_failure:
        run_dbt(paths, "test", select="always_fails", project_dir=project, session=session)
    assert "test.apy_runway.always_fails" in str(warm_failure.value)
    assert "FAIL" in str(warm_failure.value) and "dbt.log" in str(warm_failure.value)
    # a dbt subprocess: its lines go to a file, the console gets dbt's account
    with pytest.raises(UserError) as cold_failure:
        run_dbt(paths, "test", select="always_fails", project_dir=project)
    message = str(cold_failure.value)
    assert "always_fails" in message and "Got 1 result" in message
    log_file = paths.data / "dbt_logs" / "test.log"
    assert f"every line: {log_file}" in message
    assert "START test always_fails" in log_file.read_text()
    assert "START test" not in capsys.readouterr().out
