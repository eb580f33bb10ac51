"""Labels against an independent pandas recomputation, for several label
settings passed as dbt vars (the one source of configuration), and the
settings travelling as columns beside the label.
"""

from __future__ import annotations

import math
import shutil
from concurrent.futures import ThreadPoolExecutor
from datetime import date

import duckdb
import numpy as np
import pandas as pd
import pytest

from apy_runway.foundation.console import UserError
from apy_runway.foundation.paths import project_paths
from apy_runway.landing.generate import generate_snapshots
from apy_runway.landing.ingest import ingest
from apy_runway.warehouse.dbt import run_dbt

pytestmark = pytest.mark.slow

DEFAULTS = {
    "horizon_days": 30,
    "apy_future_stat": "median",
    "apy_drop_threshold": -0.2,
    "min_future_coverage": 0.5,
    "dead_pool_is_dropped": True,
}
VARIANTS = {
    "defaults": {},
    "point_strict_dead_null": {
        "apy_future_stat": "point",
        "apy_drop_threshold": 0,
        "dead_pool_is_dropped": False,
    },
    "mean_short_horizon_high_coverage": {
        "apy_future_stat": "mean",
        "horizon_days": 10,
        "min_future_coverage": 0.8,
    },
}


@pytest.fixture(scope="module")
def paths(tmp_path_factory):
    home = project_paths(tmp_path_factory.mktemp("labels")).ensure()
    landing = home.landing / "generated.parquet"
    # daily snapshots: deaths, gaps and late launches without hourly volume
    generate_snapshots(
        landing, n_pools=40, n_days=240, seed=5, start_date=date(2024, 1, 1), freq="daily"
    )
    ingest([landing], home)
    return home


def build_labels(source, home, dbt_vars: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    """`dbt build` the labels and their upstream (models, data and unit tests:
    the unit tests must hold whatever --vars the run gets) in its own home."""
    paths = project_paths(home).ensure()
    shutil.copytree(source.raw, paths.raw, dirs_exist_ok=True)
    run_dbt(
        paths,
        "build",
        dbt_vars=dbt_vars or None,
        select="+int_pool_days_labeled",
        target_path=paths.data / "dbt_target",
        quiet=True,
    )
    with duckdb.connect(str(paths.warehouse), read_only=True) as con:
        daily = con.execute(
            "select pool_id, snapshot_date, apy from int_pool_snapshots_downsampled_to_daily"
        ).df()
        labels = con.execute("select * from int_pool_days_labeled").df()
    for frame in (daily, labels):
        frame["snapshot_date"] = pd.to_datetime(frame["snapshot_date"])
    return daily, labels


@pytest.fixture(scope="module")
def variant_builds(paths, tmp_path_factory) -> dict:
    """One build per label variant, run side by side (each in its own home)."""
    root = tmp_path_factory.mktemp("label_variants")
    with ThreadPoolExecutor(max_workers=len(VARIANTS)) as pool:
        futures = {
            name: pool.submit(build_labels, paths, root / name, dbt_vars)
            for name, dbt_vars in VARIANTS.items()
        }
        return {name: future.result() for name, future in futures.items()}


def expected_labels(
    daily: pd.DataFrame,
    horizon_days: int,
    apy_future_stat: str,
    apy_drop_threshold: float,
    min_future_coverage: float,
    dead_pool_is_dropped: bool,
) -> pd.DataFrame:
    """The label rules of issue 3, written plainly over each pool's observed days."""
    horizon = pd.Timedelta(days=horizon_days)
    data_end = daily["snapshot_date"].max()
    rows = []
    for pool_id, pool in daily.groupby("pool_id"):
        apy_by_day = pool.set_index("snapshot_date")["apy"].sort_index()
        last_day = apy_by_day.index.max()
        for day, apy in apy_by_day.items():
            future = apy_by_day[(apy_by_day.index > day) & (apy_by_day.index <= day + horizon)]
            coverage = len(future) / horizon_days
            if apy_future_stat == "point":
                apy_future = apy_by_day.get(day + horizon, np.nan)
            elif len(future) == 0:
                apy_future = np.nan
            else:
                apy_future = future.mean() if apy_future_stat == "mean" else future.median()
            silent_for = (data_end - last_day).days
            if day + horizon > data_end or apy <= 0:
                label = None
            elif last_day < day + horizon:
                dead = silent_for >= horizon_days
                label = 0 if dead and dead_pool_is_dropped else None
            elif math.isnan(apy_future) or (
                apy_future_stat != "point" and coverage < min_future_coverage
            ):
                label = None
            else:
                label = 0 if apy_future / apy - 1 < apy_drop_threshold else 1
            rows.append((pool_id, day, apy_future, coverage, label))
    frame = pd.DataFrame(
        rows, columns=["pool_id", "snapshot_date", "apy_future", "future_coverage", "is_apy_kept"]
    )
    return frame.set_index(["pool_id", "snapshot_date"]).sort_index()


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_labels_match_an_independent_recomputation(variant_builds, variant):
    settings = {**DEFAULTS, **VARIANTS[variant]}
    daily, labels = variant_builds[variant]
    expected = expected_labels(daily, **settings)
    actual = labels.set_index(["pool_id", "snapshot_date"]).sort_index()
    assert actual.index.equals(expected.index)

    kept = actual["is_apy_kept"].astype("Float64")
    wanted = expected["is_apy_kept"].astype("Float64")
    mismatched = (kept.isna() != wanted.isna()) | (kept.fillna(-1) != wanted.fillna(-1))
    assert not mismatched.any(), actual[mismatched].head().to_string()
    np.testing.assert_allclose(
        actual["apy_future"].to_numpy(float),
        expected["apy_future"].to_numpy(float),
        rtol=1e-9,
        equal_nan=True,
    )
    np.testing.assert_allclose(
        actual["future_coverage"].to_numpy(float),
        expected["future_coverage"].to_numpy(float),
        rtol=1e-12,
    )

    # the data exercises every branch: kept, dropped, unknown, dead pools
    assert set(kept.dropna().unique()) == {0, 1}
    assert kept.isna().sum() > 0
    assert actual["is_pool_dead"].any()

    # the settings travel beside the label, one value each
    for name, value in settings.items():
        assert actual[name].unique().tolist() == [value], name
    assert (
        actual["label_window_end_date"]
        == actual.index.get_level_values("snapshot_date")
        + pd.Timedelta(days=settings["horizon_days"])
    ).all()


def test_no_label_in_the_last_horizon_days_of_the_data(variant_builds):
    _, labels = variant_builds["defaults"]
    data_end = labels["snapshot_date"].max()
    late = labels["snapshot_date"] > data_end - pd.Timedelta(days=DEFAULTS["horizon_days"])
    assert late.sum() > 40
    assert labels.loc[late, "is_apy_kept"].isna().all()
    assert labels.loc[~late, "is_apy_kept"].notna().mean() > 0.8


def test_an_unknown_label_statistic_is_refused_when_dbt_parses_the_project(paths):
    with pytest.raises(
        UserError, match="apy_future_stat must be point, mean or median, got 'mode'"
    ):
        run_dbt(
            paths,
            "parse",
            dbt_vars={"apy_future_stat": "mode"},
            target_path=paths.data / "dbt_target_bad",
            quiet=True,
        )
