"""Leakage test: build on the full history and on the history cut at a date
(dbt var as_of_date); every feature of the days up to the cut must be
identical, and the cut build's labels must equal the full build's or be null
(null in the last horizon_days before the cut). It runs through `apy-runway
check-leakage --cut DATE`, which exits 1 on a leak.

The test of the test copies the dbt project to a temporary folder, adds a
deliberately leaking feature (a centred window) and a label that ignores
where the data ends, and checks that the comparison reports exactly those.
"""

from __future__ import annotations

import json
import shutil
from datetime import date, timedelta
from pathlib import Path

import duckdb
import pytest

from apy_runway.cli import main as cli_main
from apy_runway.foundation.defaults import DBT_PROJECT_DIR
from apy_runway.foundation.paths import project_paths
from apy_runway.landing.generate import generate_snapshots
from apy_runway.landing.ingest import ingest
from apy_runway.warehouse.leakage import compare_builds, leakage_dir

pytestmark = pytest.mark.slow

START = date(2024, 1, 1)
N_DAYS = 240
CUT = START + timedelta(days=150)
HORIZON = 30


@pytest.fixture(scope="module")
def raw_snapshots(tmp_path_factory) -> Path:
    """Generated daily snapshots (with gaps, late launches and dead pools), ingested
    once; the raw store's folder."""
    paths = project_paths(tmp_path_factory.mktemp("leakage_source")).ensure()
    landing = paths.landing / "generated.parquet"
    generate_snapshots(landing, n_pools=40, n_days=N_DAYS, seed=7, start_date=START, freq="daily")
    ingest([landing], paths)
    return paths.raw


def check_leakage(home: Path, raw: Path, *extra: str) -> tuple[int, dict, Path]:
    """`apy-runway check-leakage --cut CUT` on a home holding the raw store `raw`:
    (exit code, report.json, folder of the two warehouses)."""
    paths = project_paths(home).ensure()
    shutil.copytree(raw, paths.raw, dirs_exist_ok=True)
    code = cli_main(["--home", str(home), "check-leakage", "--cut", CUT.isoformat(), *extra])
    folder = leakage_dir(paths)
    return code, json.loads((folder / "report.json").read_text()), folder


@pytest.fixture(scope="module")
def product_check(raw_snapshots, tmp_path_factory) -> tuple[int, dict, Path]:
    return check_leakage(tmp_path_factory.mktemp("leakage_product"), raw_snapshots)


@pytest.fixture(scope="module")
def product_builds(product_check) -> tuple[Path, Path]:
    _, _, folder = product_check
    return folder / "full.duckdb", folder / "cut.duckdb"


def test_check_leakage_passes_on_the_project(product_check):
    code, report, _ = product_check
    assert code == 0
    assert report["is_clean"] and report["horizon_days"] == HORIZON
    assert report["summary"].startswith("no leakage at cut")


def test_features_and_labels_do_not_leak_across_the_cut(product_builds):
    full, cut = product_builds
    report = compare_builds(full, cut, CUT, HORIZON)
    assert report.is_clean, report.summary()
    # the comparison had real work to do
    assert report.compared_rows > 40 * 100
    assert len(report.feature_mismatches) > 60
    assert report.labeled_rows_in_cut > 1000


def test_the_cut_build_really_ends_at_the_cut_and_nulls_the_last_horizon(product_builds):
    full, cut = product_builds
    with duckdb.connect(str(cut), read_only=True) as con:
        last_day, data_end = con.execute(
            "select max(snapshot_date), max(label_window_end_date) - 30 from int_pool_days_labeled"
        ).fetchone()
        late_labels = con.execute(
            "select count(*) from int_pool_days_labeled "
            "where is_apy_kept is not null and snapshot_date > ?",
            [CUT - timedelta(days=HORIZON)],
        ).fetchone()[0]
    assert last_day == data_end == CUT
    assert late_labels == 0
    # ... while the full build does label those days: the cut build had to null them
    with duckdb.connect(str(full), read_only=True) as con:
        full_late_labels = con.execute(
            "select count(*) from int_pool_days_labeled "
            "where is_apy_kept is not null and snapshot_date > ? and snapshot_date <= ?",
            [CUT - timedelta(days=HORIZON), CUT],
        ).fetchone()[0]
    assert full_late_labels > 100


def _leaking_project(tmp: Path) -> Path:
    """A copy of the dbt project with a centred-window feature and a label
    that ignores where the data ends."""
    project = tmp / "dbt_project"
    shutil.copytree(DBT_PROJECT_DIR, project, ignore=shutil.ignore_patterns("target", "logs"))
    featurized = project / "models" / "intermediate" / "int_pool_days_featurized.sql"
    text = featurized.read_text()
    anchor = "        -- dates\n        days_to_build.snapshot_date\n"
    assert anchor in text
    featurized.write_text(
        text.replace(
            anchor,
            (
                "        avg(days_to_build.apy) over (\n"
                "            partition by days_to_build.pool_id\n"
                "            order by days_to_build.snapshot_date\n"
                "            rows between 3 preceding and 3 following\n"
                "        ) as apy_centred_7d_mean,\n" + anchor
            ),
        )
    )
    # a label that thinks the data goes on one horizon past its last day
    labeled = project / "models" / "intermediate" / "int_pool_days_labeled.sql"
    text = labeled.read_text()
    data_end = "select max(snapshot_date) as data_end_date from densified"
    assert data_end in text
    labeled.write_text(
        text.replace(
            data_end, data_end.replace("max(snapshot_date)", "max(snapshot_date) + {{ horizon }}")
        )
    )
    return project


def test_check_leakage_fails_on_a_centred_window_and_a_label_past_the_cut(raw_snapshots, tmp_path):
    project = _leaking_project(tmp_path)
    code, report, folder = check_leakage(
        tmp_path / "home", raw_snapshots, "--project-dir", str(project)
    )
    assert code == 1
    assert not report["is_clean"]
    assert sorted(name for name, n in report["feature_mismatches"].items() if n) == [
        "apy_centred_7d_mean"
    ]
    # the last 3 observed days before the cut of (nearly) every pool change
    assert report["feature_mismatches"]["apy_centred_7d_mean"] >= 3 * 20
    # every pool still reporting at the cut looks dead in its last 30 days
    assert report["labels_past_cut"] > 20 * HORIZON
    assert report["label_mismatches"] > 0
    assert "apy_centred_7d_mean" in report["summary"]
    # the pure comparison says the same of the two warehouses
    direct = compare_builds(folder / "full.duckdb", folder / "cut.duckdb", CUT, HORIZON)
    assert direct.leaking_features == ["apy_centred_7d_mean"]
