"""Smoke tests of the benchmark harness on tiny data (no timing assertions:
timing goals live in benchmarks/RESULTS.md): every module of benchmarks/
runs here at a tiny scale, so a benchmark that breaks fails the tests.

One tiny hourly build (8 pools x 75 days) is shared: the pandas anchor and the
engine-only runner must compute what dbt computed, or their ratios would
compare different work. The golden fixture's inputs and run stand in for a
trained home. Figures go to a temporary results file, never to
benchmarks/results/.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from fixtures.tiny_model import tiny_reference, write_run

from apy_runway.foundation.paths import REPO_ROOT, project_paths
from apy_runway.warehouse.dbt import dbt_target_dir
from inference import contracts

# benchmarks/ is a folder of the repository, not an installed package
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from benchmarks import (
    board_bench,
    drift_calibration,
    engine_only,
    portable_equality,
    report,
    run,
    serving_guards_bench,
    sql_variants,
    train_bench,
)
from benchmarks.measure import measure, python_argv
from benchmarks.refresh_input import split_by_month
from benchmarks.run import dbt_profile, last_json, with_new_snapshots

pytestmark = pytest.mark.slow
GOLDEN = REPO_ROOT / "tests" / "fixtures" / "golden"


@pytest.fixture(scope="module", autouse=True)
def results(tmp_path_factory):
    """The smoke runs' figures, in a temporary results file."""
    path = tmp_path_factory.mktemp("results") / "results.jsonl"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(contracts.ENV_BENCH_RESULTS, str(path))
        yield path


def recorded(results: Path, section: str) -> dict:
    rows = [json.loads(line) for line in results.read_text().splitlines()]
    return [row for row in rows if row["section"] == section][-1]


@pytest.fixture(scope="module")
def golden_home(tmp_path_factory) -> Path:
    """A home whose exports are the golden fixture's inputs (40 pools x 200 days)."""
    home = tmp_path_factory.mktemp("golden") / "home"
    paths = project_paths(home).ensure()
    paths.exports.mkdir(parents=True, exist_ok=True)
    for path in (GOLDEN / "inputs").iterdir():
        shutil.copy(path, paths.exports / path.name)
    return home


def cli(home: Path, *args: str) -> list[str]:
    return python_argv("apy_runway.cli", "--home", str(home), *args)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    home = tmp_path_factory.mktemp("bench") / "home"
    source = home.parent / "generated.parquet"
    log = home.parent / "log.txt"
    measure(
        cli(home, "generate", "--pools", "8", "--days", "75", "--out", str(source)), log_path=log
    )
    measure(cli(home, "ingest", str(source)), log_path=log)
    build = measure(cli(home, "build", "--command", "run"), log_path=log)
    return project_paths(home), source, build


def test_measure_reports_the_child_peak_memory_and_refuses_failures(tmp_path):
    allocate = "import numpy; a = numpy.ones(300 * 2**20 // 8); a[::512] += 1"
    big = measure([sys.executable, "-c", allocate])
    small = measure([sys.executable, "-c", "pass"])
    assert big.peak_rss_mb >= 300 > small.peak_rss_mb
    assert big.wall_s > 0 and big.returncode == 0
    with pytest.raises(RuntimeError, match="exited 3"):
        measure([sys.executable, "-c", "raise SystemExit(3)"], log_path=tmp_path / "log")


def test_measure_is_not_inflated_by_a_big_parent():
    """A fork copies the parent's RSS into the child's high-water mark: measuring
    from a 600 MB process must still report a small command as small."""
    code = (
        "import numpy, sys; big = numpy.ones(600 * 2**20 // 8); big[::512] += 1\n"
        "from benchmarks.measure import measure\n"
        "print(measure([sys.executable, '-c', 'pass']).peak_rss_mb)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO_ROOT
    )
    assert float(done.stdout.strip().splitlines()[-1]) < 100


def test_measure_includes_grandchildren(tmp_path):
    """dbt runs as a subprocess of the CLI: its memory must count."""
    allocate = "import numpy; a = numpy.ones(300 * 2**20 // 8); a[::512] += 1"
    parent = (
        f"import subprocess, sys; subprocess.run([sys.executable, '-c', {allocate!r}], check=True)"
    )
    assert measure([sys.executable, "-c", parent]).peak_rss_mb >= 300


def test_pandas_prototype_computes_dbts_features_and_label(built, tmp_path):
    paths, source, _ = built
    out = tmp_path / "pandas.parquet"
    measure(python_argv("benchmarks.pandas_prototype", str(source), str(out)))
    ours = pd.read_parquet(out).rename(columns={"pool": "pool_id"})
    ours["snapshot_date"] = (
        pd.to_datetime(ours["snapshot_date"]).dt.tz_localize(None).dt.normalize()
    )
    with duckdb.connect(str(paths.warehouse), read_only=True) as con:
        dbt = con.execute(
            "select f.*, l.is_apy_kept from int_pool_days_featurized f "
            "left join int_pool_days_labeled l using (pool_id, snapshot_date)"
        ).df()
    dbt["snapshot_date"] = pd.to_datetime(dbt["snapshot_date"])
    merged = dbt.merge(
        ours, on=["pool_id", "snapshot_date"], suffixes=("_dbt", "_pandas"), validate="one_to_one"
    )
    assert len(merged) == len(dbt) == len(ours) > 8 * 30
    for column in (
        "apy_rolling_7d_mean",
        "apy_rolling_30d_max",
        "apy_rolling_90d_median",
        "apy_rolling_14d_std",
        "apy_expanding_mean",
    ):
        np.testing.assert_allclose(
            merged[f"{column}_dbt"],
            merged[f"{column}_pandas"],
            rtol=1e-9,
            atol=1e-9,
            err_msg=column,
        )
    both = merged.dropna(subset=["is_apy_kept_dbt", "is_apy_kept_pandas"])
    assert len(both) > 8 * 20
    assert (both["is_apy_kept_dbt"].astype(float) == both["is_apy_kept_pandas"]).all()
    assert set(both["is_apy_kept_pandas"]) == {0.0, 1.0}


def test_engine_only_builds_the_same_tables_as_dbt(built, tmp_path):
    paths, _, _ = built
    manifest = json.loads((dbt_target_dir(paths) / "manifest.json").read_text())
    seconds, models = engine_only.run_models(manifest, tmp_path / paths.warehouse.name)
    assert seconds > 0 and models == sum(
        1 for n in manifest["nodes"].values() if n["resource_type"] == "model"
    )
    with duckdb.connect(str(tmp_path / paths.warehouse.name)) as con:
        con.execute(f"attach '{paths.warehouse}' as dbt_built (read_only)")
        for table in ("int_pool_days_featurized", "int_pool_days_labeled", "training_set"):
            rows = con.execute(f"select count(*) from {table}").fetchone()[0]
            # by name: dbt builds training_set (enforced contract) in its YAML's column order
            cols = ", ".join(f'"{c}"' for c, *_ in con.execute(f"describe {table}").fetchall())
            differ = con.execute(
                f"select count(*) from ((select {cols} from {table} except all "
                f"select {cols} from dbt_built.main.{table}) union all "
                f"(select {cols} from dbt_built.main.{table} except all "
                f"select {cols} from {table}))"
            ).fetchone()[0]
            assert rows > 0 and differ == 0, table


def test_engine_only_cli_prints_its_figure(built):
    paths, _, _ = built
    result = subprocess.run(
        python_argv("benchmarks.engine_only", str(paths.home)),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["engine_s"] > 0 and figures["models"] >= 5
    assert not [p for p in paths.data.iterdir() if p.name.startswith("tmp")]


def test_dbt_profile_reads_the_builds_run_results(built):
    paths, _, build = built
    profile = dbt_profile(paths.home)
    assert "int_pool_days_rolling_features" in profile["per_model_s"]
    # models_s is summed over dbt's 2 threads (profiles.yml), so it may exceed
    # the elapsed time, but not twice it
    assert 0 < profile["models_s"] <= 2 * profile["dbt_elapsed_s"] + 1
    assert profile["dbt_elapsed_s"] < build.wall_s
    assert profile["tests"] == 0  # built with `dbt run`


def test_new_snapshots_repeat_the_last_hours_later(built, tmp_path):
    _, source, _ = built
    out = tmp_path / "plus.parquet"
    rows = with_new_snapshots(source, out, 24)
    with duckdb.connect() as con:
        con.execute("set TimeZone = 'UTC'")
        before = con.execute(f"select count(*), max(timestamp) from '{source}'").fetchone()
        after = con.execute(
            f"select count(*), max(timestamp), count(distinct (pool, timestamp)) from '{out}'"
        ).fetchone()
        last_day = con.execute(
            f"select count(*) from '{source}' "
            f"where timestamp > (select max(timestamp) from '{source}') "
            f"- interval 24 hour"
        ).fetchone()[0]
    assert rows == after[0] == before[0] + last_day and last_day > 0
    assert after[1] > before[1] and after[2] == after[0]


def test_last_json_takes_the_last_result_line(tmp_path):
    log = tmp_path / "log"
    log.write_text('noise\n{"a": 1}\nmore noise\n{"b": 2}\ntrailing\n')
    assert last_json(log) == {"b": 2}
    log.write_text("no json\n")
    with pytest.raises(RuntimeError):
        last_json(log)


def test_history_split_by_month_holds_every_row(built, tmp_path):
    _, source, _ = built
    files = split_by_month(source, tmp_path / "months")
    with duckdb.connect() as con:
        count = "select count(*) from read_parquet('{}')"
        months = con.execute(count.format(tmp_path / "months" / "*" / "*.parquet")).fetchone()
        assert months == con.execute(count.format(source)).fetchone()
    assert files >= 3  # 75 days span three calendar months


# --------------------------------------------------------------------------- every benchmark


def test_inference_section_prints_the_warm_over_predict_proba_ratio(
    golden_home, results, tmp_path, capsys
):
    """`make bench`'s inference section on 300 pools of the golden run, no
    layers built (the clean interpreters use this venv's site-packages)."""
    run.main(
        [
            "--sections",
            "inference",
            "--inference-home",
            str(golden_home),
            "--run",
            str(GOLDEN / "run"),
            "--inference-pools",
            "300",
            "--inference-args",
            "--no-layers --repeat 1 --cold-runs 1 --prototype --prototype-trees 3",
            "--workdir",
            str(tmp_path),
        ]
    )
    assert "warm invocation / predict_proba (n_jobs=1) at 300 pools:" in capsys.readouterr().out
    row = recorded(results, "inference")
    warm = row["warm"]
    assert warm["pools"] == 300 and warm["warm_over_predict_proba"] > 0
    assert {"features_get", "scoring", "reasons", "records", "put_latest"} <= set(
        warm["breakdown_ms"]
    )
    assert {"ledger_gzip", "put_ledger"} <= set(warm["overlapped_ms"])
    assert warm["max_abs_difference_vs_predict_proba"] <= 1e-9 and warm["rows_compared"] == 300
    assert row["cold"]["cold_start_ms"] > 0 and row["cold"]["modules"] == []
    assert row["sklearn"]["cold_start_ms"] > 0
    assert row["prototype"]["max_abs_difference"] <= 1e-9


def test_serving_guards_bench_runs(results):
    serving_guards_bench.main(["--pools", "200", "--rows", "20", "--repeat", "1"])
    row = recorded(results, "serving-guards")
    assert row["latest_json"]["ratio"] > 0 and row["request_parsing"]["rows"] == 20


def test_train_bench_runs(golden_home, capsys):
    home = str(golden_home)
    train_bench.main([home, "--models", "logistic", "--grid", "3:50", "--latency-rows", "200"])
    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert [m["model"].split()[0] for m in figures["models"]] == ["logistic", "random_forest"]
    assert all(0 <= m["test_auc"] <= 1 for m in figures["models"])


def test_portable_equality_runs(golden_home, capsys):
    portable_equality.main([str(golden_home)])
    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert len(figures["models"]) == 9 and figures["max_abs_difference"] <= 1e-9


def test_sql_variants_agree(built, capsys):
    paths, _, _ = built
    sql_variants.main([str(paths.home)])
    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert figures["daily_rows"] > 0 and figures["rows_that_differ"] == 0


def test_drift_calibration_runs(built, capsys):
    """On the tiny build, with the tiny model and its drift reference as the
    home's latest run (the rule's code is what is exercised)."""
    paths, _, _ = built
    write_run(paths.runs / "latest", drift_reference=tiny_reference(300, days=5))
    drift_calibration.main([str(paths.home), "--every", "10"])
    figures = json.loads(capsys.readouterr().out)
    assert figures["rows"] > 0 and "load ratio" in figures
    assert any(key.startswith("false alarms") for key in figures)


def test_board_bench_runs(results, tmp_path):
    if not Path(board_bench.CHROMIUM).exists():
        pytest.skip(f"{board_bench.CHROMIUM} is not installed")
    board_bench.main(
        ["--pools", "30", "--history-days", "20", "--shards-of", "1,16", "--workdir", str(tmp_path)]
    )
    row = recorded(results, "board")
    assert row["virtual_first_render_ms"] > 0 and row["plain_first_render_ms"] > 0


def test_report_renders_the_smoke_figures(results, capsys):
    report.main([])
    out = capsys.readouterr().out
    assert "## scale" in out and "### inference 300 pools" in out
