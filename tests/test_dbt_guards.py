"""dbt's own guards on a tiny home (two pools, twelve days): nonsense vars are
refused by the on-run-start hook before anything is built
(macros/validate_vars.sql), a staged time outside the plausible range fails
the staging test, and an empty training set fails the build.

The var cases run dbt in-process (dbtRunner: one start-up for all of them);
each invocation only runs the hook and one staging view."""

from __future__ import annotations

import datetime as dt
import re

import duckdb
import pytest
import yaml

from apy_runway.foundation.console import UserError
from apy_runway.foundation.paths import project_paths
from apy_runway.landing.ingest import ingest
from apy_runway.warehouse.dbt import DBT_PROJECT_DIR, run_dbt

DAYS = 12


@pytest.fixture(scope="module")
def tiny_home(tmp_path_factory):
    root = tmp_path_factory.mktemp("dbt_guards")
    csv = root / "tiny.csv"
    lines = ["timestamp,pool,chain,project,symbol,tvlUsd,apy"]
    for day in range(1, DAYS + 1):
        for pool in ("p1", "p2"):
            lines.append(f"2024-03-{day:02d}T00:00:00Z,{pool},Ethereum,aave-v3,USDC,1000000,5.0")
    csv.write_text("\n".join(lines) + "\n")
    paths = project_paths(root / "home").ensure()
    ingest([csv], paths)
    return paths


MACRO = DBT_PROJECT_DIR / "macros" / "validate_vars.sql"


class Refused(Exception):
    pass


def render_hook(given: dict) -> None:
    """The on-run-start macro rendered by Jinja (with the `do` extension and
    dbt's own `modules`, as dbt renders it) with these vars given on the
    command line, the project's defaults beneath; raises Refused with the
    compiler error's text. test_dbt_runs_the_hook_before_building runs it in
    dbt itself."""
    import jinja2
    from dbt.context.base import get_context_modules

    defaults = yaml.safe_load((DBT_PROJECT_DIR / "dbt_project.yml").read_text())["vars"]
    values = {**defaults, **given}

    class Exceptions:
        @staticmethod
        def raise_compiler_error(message: str) -> None:
            raise Refused(message)

    environment = jinja2.Environment(extensions=["jinja2.ext.do"], undefined=jinja2.StrictUndefined)
    template = environment.from_string(MACRO.read_text() + "{{ validate_vars() }}")
    template.render(
        {
            "var": values.__getitem__,
            "invocation_args_dict": {"vars": given},
            "modules": get_context_modules(),
            "exceptions": Exceptions,
            "fromyaml": yaml.safe_load,
        }
    )


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"horizon_dayz": 7}, r"unknown var\(s\) horizon_dayz; the known vars are as_of_date, "),
        ({"horizon_days": 1.9}, "horizon_days must be a positive whole number of days, got 1.9"),
        ({"horizon_days": 0}, "horizon_days must be a positive whole number"),
        ({"horizon_days": -3}, "horizon_days must be a positive whole number"),
        ({"horizon_days": "abc"}, "horizon_days must be a positive whole number"),
        ({"horizon_days": True}, "horizon_days must be a positive whole number"),
        ({"drift_reference_days": 0}, "drift_reference_days must be a positive whole number"),
        ({"drift_reference_days": 7.5}, "drift_reference_days must be a positive whole number"),
        ({"apy_drop_threshold": 5}, r"apy_drop_threshold must lie in \(-1, 1\)"),
        ({"apy_drop_threshold": -1}, r"apy_drop_threshold must lie in \(-1, 1\)"),
        ({"apy_drop_threshold": "abc"}, 'apy_drop_threshold must be a number, got "abc"'),
        ({"apy_drop_threshold": "nan"}, "apy_drop_threshold must be a number"),
        ({"min_future_coverage": -1}, r"min_future_coverage must lie in \[0, 1\]"),
        ({"min_future_coverage": 2}, r"min_future_coverage must lie in \[0, 1\]"),
        ({"min_future_coverage": "half"}, "min_future_coverage must be a number"),
        ({"as_of_date": "2024-02-30"}, "as_of_date must be a date YYYY-MM-DD"),
        ({"as_of_date": "yesterday"}, "as_of_date must be a date YYYY-MM-DD"),
        ({"as_of_date": "2024-13-01"}, "as_of_date must be a date YYYY-MM-DD"),
        ({"refresh_from_date": 20240301}, "refresh_from_date must be a date YYYY-MM-DD"),
        ({"apy_future_stat": "max"}, "apy_future_stat must be one of point, mean, median"),
        ({"daily_downsampling": "first"}, "daily_downsampling must be one of last, mean, median"),
        ({"dead_pool_is_dropped": "yes"}, "dead_pool_is_dropped must be true or false"),
    ],
)
def test_nonsense_vars_are_refused(given, message):
    with pytest.raises(Refused, match=message):
        render_hook(given)


@pytest.mark.parametrize(
    "given",
    [
        {},
        {"horizon_days": 7, "apy_drop_threshold": 0, "min_future_coverage": 1},
        {"horizon_days": "10", "apy_drop_threshold": "-0.5", "min_future_coverage": 0},
        {"as_of_date": "2024-02-29", "refresh_from_date": None},
        {"as_of_date": dt.date(2024, 3, 10)},  # YAML reads an unquoted date as a date
        {"apy_future_stat": "point", "daily_downsampling": "mean", "dead_pool_is_dropped": False},
    ],
)
def test_sensible_vars_pass(given):
    render_hook(given)


def test_dbt_runs_the_hook_before_building(tiny_home, tmp_path):
    """The hook as dbt runs it (on-run-start): a typo is refused before any
    model is built."""
    with pytest.raises(UserError) as error:
        run_dbt(
            tiny_home,
            "run",
            dbt_vars="{horizon_dayz: 7}",
            select="stg_defillama__pool_snapshots",
            target_path=tmp_path / "target",
            quiet=True,
        )
    assert "unknown var(s) horizon_dayz; the known vars are as_of_date" in str(error.value)
    assert "on-run-start" in str(error.value)


def test_the_hook_knows_every_var_of_the_project():
    project = yaml.safe_load((DBT_PROJECT_DIR / "dbt_project.yml").read_text())
    macro = (DBT_PROJECT_DIR / "macros" / "validate_vars.sql").read_text()
    known = re.search(r"set known = \[(.*?)\]", macro, re.S).group(1)
    assert set(re.findall(r'"(\w+)"', known)) == set(project["vars"])


def test_the_staged_range_matches_the_contracts():
    from inference import contracts

    models = yaml.safe_load((DBT_PROJECT_DIR / "models/staging/_defillama__models.yml").read_text())
    (model,) = models["models"]
    (column,) = [c for c in model["columns"] if c["name"] == "snapshot_at"]
    (bounds,) = [
        t["accepted_range"]["arguments"] for t in column["data_tests"] if "accepted_range" in t
    ]
    assert bounds["min_value"] == f"cast('{contracts.RAW_MIN_TIMESTAMP[:10]}' as timestamp)"
    assert f"dateadd('day', {contracts.RAW_MAX_FUTURE_DAYS}," in bounds["max_value"]


def test_an_empty_training_set_and_an_implausible_staged_time_fail_the_build(tiny_home, tmp_path):
    """Twelve days cannot label a 30-day horizon: the training set is empty,
    and the build says so instead of exporting zero rows. Then a store
    written before ingest checked the time range (or by hand): the staging
    test catches the 2099 row that would move the data's end."""
    target = tmp_path / "target"
    with pytest.raises(UserError) as error:
        run_dbt(tiny_home, "build", target_path=target, quiet=True)
    assert "test_training_set_has_both_classes" in str(error.value)

    part = tiny_home.raw_store / "snapshot_date=2099-01-01"
    part.mkdir()
    first = next(tiny_home.raw_store.glob("snapshot_date=2024*/*.parquet"))
    con = duckdb.connect()
    con.execute("set TimeZone = 'UTC'")
    con.execute(
        f"copy (select timestamptz '2099-01-01 00:00:00+00' as timestamp, * exclude "
        f"(timestamp) from read_parquet('{first}') limit 1) "
        f"to '{part / '00000099.parquet'}' (format parquet)"
    )
    with pytest.raises(UserError) as error:
        run_dbt(
            tiny_home,
            "test",
            select="stg_defillama__pool_snapshots",
            target_path=target,
            quiet=True,
        )
    assert "accepted_range_stg_defillama__pool_snapshots_snapshot_at" in str(error.value)
