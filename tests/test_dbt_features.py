"""The dbt feature store on generated data: one `dbt build` (models, data
tests, unit tests) per module, then

- the parquet exports and the feature contract (feature_columns.json),
- the densified-calendar `rows` frames against `range` frames on the daily
  model (the two ways of writing calendar-day windows give the same values),
- every feature of a sample of pools recomputed independently in pandas
  (time-based windows over the observed days, exact day d-n lookups),
- the build on the real DefiLlama sample, when it is mounted.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from apy_runway.foundation.paths import project_paths
from apy_runway.landing.generate import generate_snapshots
from apy_runway.landing.ingest import ingest
from apy_runway.warehouse.build import export_feature_columns
from apy_runway.warehouse.dbt import run_dbt

pytestmark = pytest.mark.slow

WINDOWS = (7, 14, 30, 90)
CHANGE_DAYS = (1, 7, 30)
AGGREGATES = ("mean", "std", "median", "min", "max")
SQL_AGGREGATES = {
    "mean": "avg",
    "std": "stddev_samp",
    "median": "median",
    "min": "min",
    "max": "max",
}
PROTOTYPE_FEATURES = [
    "apy",
    "tvl_usd",
    "apy_expanding_mean",
    "apy_expanding_std",
    "chain",
    "project",
]
REAL_SAMPLE = Path("/work/shared/data/defillama_sample/chart_history.csv")


def build_home(home: Path, inputs: list[Path]) -> tuple:
    """ingest `inputs` into a fresh project home and `dbt build` it."""
    paths = project_paths(home).ensure()
    ingest(inputs, paths)
    target = home / "dbt_target"
    run_dbt(paths, "build", target_path=target, quiet=True)
    return paths, target


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    home = tmp_path_factory.mktemp("features")
    landing = home / "generated.parquet"
    generate_snapshots(landing, n_pools=30, n_days=200, seed=11, start_date=date(2024, 1, 1))
    return build_home(home, [landing])


@pytest.fixture(scope="module")
def warehouse(built):
    paths, _ = built
    con = duckdb.connect(str(paths.warehouse), read_only=True)
    con.execute("set TimeZone = 'UTC'")
    yield con
    con.close()


@pytest.fixture(scope="module")
def daily(warehouse) -> pd.DataFrame:
    frame = warehouse.execute(
        "select * from int_pool_snapshots_downsampled_to_daily order by pool_id, snapshot_date"
    ).df()
    frame["snapshot_date"] = pd.to_datetime(frame["snapshot_date"])
    return frame


@pytest.fixture(scope="module")
def features(warehouse) -> pd.DataFrame:
    frame = warehouse.execute(
        "select * from int_pool_days_featurized order by pool_id, snapshot_date"
    ).df()
    frame["snapshot_date"] = pd.to_datetime(frame["snapshot_date"])
    return frame


def test_exports_match_the_marts_and_the_feature_contract_is_written(built, warehouse):
    paths, target = built
    contract = export_feature_columns(paths, target)
    written = json.loads(paths.feature_columns.read_text())
    assert written == contract
    assert written["features"] == written["numeric"] + written["categorical"]
    assert written["categorical"] == ["chain", "project", "il_risk", "exposure", "stablecoin"]
    assert set(PROTOTYPE_FEATURES) <= set(written["features"])
    assert "observed_day_count" in written["numeric"]
    assert len(written["numeric"]) == len(set(written["numeric"])) > 50
    not_features = {
        "pool_id",
        "snapshot_date",
        "symbol",
        "pool_meta",
        "is_apy_kept",
        "apy_future",
        "future_coverage",
        "label_window_end_date",
        "horizon_days",
    }
    assert not not_features & set(written["features"])

    for mart, path in (
        ("training_set", paths.training_set),
        ("latest_features", paths.latest_features),
    ):
        exported = pd.read_parquet(path)
        in_warehouse = warehouse.execute(f"select count(*) from {mart}").fetchone()[0]
        assert len(exported) == in_warehouse > 0
        assert set(written["features"]) <= set(exported.columns), mart
        assert {"pool_id", "snapshot_date", "symbol"} <= set(exported.columns)
        assert not exported[written["categorical"]].isna().any().any(), mart
        assert not exported.duplicated(["pool_id", "snapshot_date"]).any()

    training = pd.read_parquet(paths.training_set)
    assert set(training["is_apy_kept"].unique()) == {0, 1}
    assert training["is_apy_kept"].dtype.kind == "i"
    assert (
        pd.to_datetime(training["label_window_end_date"])
        == pd.to_datetime(training["snapshot_date"]) + pd.Timedelta(days=30)
    ).all()
    for setting, value in (
        ("horizon_days", 30),
        ("apy_drop_threshold", -0.2),
        ("apy_future_stat", "median"),
        ("min_future_coverage", 0.5),
        ("dead_pool_is_dropped", True),
    ):
        assert training[setting].unique().tolist() == [value], setting
    latest = pd.read_parquet(paths.latest_features)
    assert latest["pool_id"].is_unique
    assert (
        latest["pool_id"].nunique()
        == warehouse.execute(
            "select count(distinct pool_id) from int_pool_snapshots_downsampled_to_daily"
        ).fetchone()[0]
    )


def test_rows_frames_on_the_densified_calendar_equal_range_frames(warehouse, daily):
    # the data must have gaps, or rows and range frames agree trivially
    gaps = warehouse.execute(
        "select count(*) from int_pool_days_densified where not is_observed"
    ).fetchone()[0]
    assert gaps > 0
    columns = []
    for n in WINDOWS:
        frame = (
            f"partition by pool_id order by snapshot_date "
            f"range between interval {n - 1} days preceding and current row"
        )
        for agg in AGGREGATES:
            columns.append(f"{SQL_AGGREGATES[agg]}(apy) over ({frame}) as apy_rolling_{n}d_{agg}")
        columns.append(f"avg(apy_base) over ({frame}) as apy_base_rolling_{n}d_mean")
        columns.append(f"stddev_samp(apy_base) over ({frame}) as apy_base_rolling_{n}d_std")
        columns.append(f"count(*) over ({frame}) / {n} as observed_day_rolling_{n}d_share")
    names = [column.rsplit(" as ", 1)[1] for column in columns]
    ranged = warehouse.execute(
        f"select pool_id, snapshot_date, {', '.join(columns)} "
        "from int_pool_snapshots_downsampled_to_daily order by pool_id, snapshot_date"
    ).df()
    rowed = warehouse.execute(
        f"select pool_id, snapshot_date, {', '.join(names)} "
        "from int_pool_days_rolling_features order by pool_id, snapshot_date"
    ).df()
    assert len(ranged) == len(rowed) == len(daily)
    assert (ranged["pool_id"] == rowed["pool_id"]).all()
    for name in names:
        np.testing.assert_allclose(
            rowed[name].to_numpy(float),
            ranged[name].to_numpy(float),
            rtol=1e-9,
            atol=1e-9,
            equal_nan=True,
            err_msg=name,
        )


def _pandas_pool_features(pool: pd.DataFrame) -> pd.DataFrame:
    """Point-in-time features of one pool, by pandas time-based windows."""
    s = pool.set_index("snapshot_date").sort_index()
    out = pd.DataFrame(index=s.index)
    apy, base, tvl = s["apy"], s["apy_base"], s["tvl_usd"]
    out["apy"] = apy
    out["tvl_usd"] = tvl
    out["apy_expanding_mean"] = apy.expanding().mean()
    out["apy_expanding_std"] = apy.expanding().std()
    mean = out["apy_expanding_mean"]
    out["apy_relative_to_expanding_mean"] = (apy / mean - 1).where(mean > 0)
    share = (s["apy_reward"] / apy).where(apy > 0)
    out["apy_reward_share"] = share
    out["tvl_usd_log"] = np.log1p(tvl.where(tvl >= 0))
    for n in WINDOWS:
        window = apy.rolling(f"{n}D")  # the days (d - n, d]
        out[f"apy_rolling_{n}d_mean"] = window.mean()
        out[f"apy_rolling_{n}d_std"] = window.std()
        out[f"apy_rolling_{n}d_median"] = window.median()
        out[f"apy_rolling_{n}d_min"] = window.min()
        out[f"apy_rolling_{n}d_max"] = window.max()
        rolling_mean = out[f"apy_rolling_{n}d_mean"]
        out[f"apy_relative_to_rolling_{n}d_mean"] = (apy / rolling_mean - 1).where(rolling_mean > 0)
        out[f"apy_base_rolling_{n}d_mean"] = base.rolling(f"{n}D").mean()
        out[f"apy_base_rolling_{n}d_std"] = base.rolling(f"{n}D").std()
        out[f"observed_day_rolling_{n}d_share"] = apy.rolling(f"{n}D").count() / n
    for n in CHANGE_DAYS:
        earlier = s.index - pd.Timedelta(days=n)  # exactly day d - n, NaN if missing
        apy_then = apy.reindex(earlier).to_numpy()
        tvl_then = tvl.reindex(earlier).to_numpy()
        out[f"apy_change_{n}d"] = apy.to_numpy() - apy_then
        out[f"tvl_usd_change_{n}d"] = np.where(tvl_then > 0, tvl.to_numpy() / tvl_then - 1, np.nan)
        if n > 1:
            out[f"apy_reward_share_change_{n}d"] = (
                share.to_numpy() - share.reindex(earlier).to_numpy()
            )
    out["pool_age_days"] = (s.index - s.index.min()).days
    out["observed_day_count"] = np.arange(1, len(s) + 1)
    return out


def _pandas_cross_sectional(daily: pd.DataFrame) -> pd.DataFrame:
    frame = daily[["pool_id", "snapshot_date", "apy"]].copy()
    for group in ("project", "chain"):
        key = [daily["snapshot_date"], daily[group].fillna("unknown")]
        size = frame.groupby(key)["apy"].transform("size")
        rank = frame.groupby(key)["apy"].rank(method="min")
        median = frame.groupby(key)["apy"].transform("median")
        frame[f"apy_{group}_percent_rank"] = ((rank - 1) / (size - 1)).where(size >= 2)
        frame[f"apy_{group}_median_ratio"] = (frame["apy"] / median).where(
            (size >= 2) & (median > 0)
        )
        frame[f"{group}_pool_count"] = size
    return frame.set_index(["pool_id", "snapshot_date"])


def test_features_match_an_independent_pandas_recomputation(daily, features):
    # a sample of pools: the ones with the most gaps, the youngest, and a few more
    spans = daily.groupby("pool_id")["snapshot_date"].agg(["min", "max", "size"])
    spans["missing_days"] = (spans["max"] - spans["min"]).dt.days + 1 - spans["size"]
    sample = set(spans.nlargest(4, "missing_days").index)
    sample |= set(spans.nlargest(2, "min").index) | set(spans.index[::7])
    assert spans.loc[list(sample), "missing_days"].sum() > 0

    expected = pd.concat(
        {pool: _pandas_pool_features(daily[daily["pool_id"] == pool]) for pool in sorted(sample)},
        names=["pool_id", "snapshot_date"],
    )
    cross = _pandas_cross_sectional(daily)
    expected = expected.join(cross.drop(columns="apy"))
    actual = features.set_index(["pool_id", "snapshot_date"]).loc[expected.index]
    assert len(expected) > 1000
    for name in expected.columns:
        np.testing.assert_allclose(
            actual[name].to_numpy(float),
            expected[name].to_numpy(float),
            rtol=1e-9,
            atol=1e-9,
            equal_nan=True,
            err_msg=name,
        )
    # every numeric feature of the contract was recomputed
    contract_numeric = [c for c in features.columns if c in expected.columns]
    assert len(contract_numeric) == len(expected.columns) > 55


def test_static_attributes_and_categoricals_are_filled(daily, features):
    latest = daily.sort_values("snapshot_date").groupby("pool_id").last()
    for pool_id, row in latest.iterrows():
        pool_features = features[features["pool_id"] == pool_id]
        stablecoin = {True: "true", False: "false"}.get(row["is_stablecoin"], "unknown")
        assert set(pool_features["stablecoin"]) == {stablecoin}
        assert set(pool_features["il_risk"]) == {row["il_risk"] or "unknown"}
    for column in ("chain", "project", "il_risk", "exposure", "stablecoin"):
        assert not features[column].isna().any(), column


def test_build_is_green_on_the_real_defillama_sample(real_sample_home):
    paths = real_sample_home  # built once per session (conftest.py), shared
    with duckdb.connect(str(paths.warehouse), read_only=True) as con:
        pools, rows = con.execute(
            "select count(distinct pool_id), count(*) from int_pool_days_featurized"
        ).fetchone()
        labeled = con.execute("select count(*) from training_set").fetchone()[0]
    assert pools == 161
    assert rows > 29_000
    assert 0 < labeled < rows
