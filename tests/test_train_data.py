"""Loading and validating the training set: clear UserErrors, eligibility, the matrix."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from fixtures.synthetic import make_training_set

from models_py.data import load_reference_features, load_training_set, prepare, to_matrix
from models_py.errors import TrainingError


@pytest.fixture(scope="module")
def small():
    return make_training_set(n_pools=8, n_days=60, seed=3)


def test_prepare_keeps_eligible_labelled_rows_and_reads_label_settings(small):
    frame, contract = small
    frame = frame.copy()
    frame.loc[frame.index[:5], "apy"] = 0.0  # apy <= 0: not scored
    frame.loc[frame.index[5:8], "is_apy_kept"] = None  # no label
    data = prepare(frame, contract)
    assert (data.frame["apy"] > 0).all()
    assert (data.frame["observed_day_count"] >= 7).all()
    assert data.dropped["unlabelled"] == 3
    labelled = frame[frame["is_apy_kept"].notna()]
    ineligible = (labelled["apy"] <= 0) | (labelled["observed_day_count"] < 7)
    assert data.dropped["not_eligible"] == int(ineligible.sum()) > 5
    assert len(data.frame) == len(frame) - 3 - int(ineligible.sum())
    assert data.label == {
        "column": "is_apy_kept",
        "horizon_days": 30,
        "apy_drop_threshold": -0.2,
        "apy_future_stat": "median",
        "min_future_coverage": 0.5,
        "dead_pool_is_dropped": True,
    }
    assert data.features == contract["numeric"] + contract["categorical"]
    assert data.frame["snapshot_date"].is_monotonic_increasing


def test_matrix_is_an_ordered_object_array(small):
    frame, contract = small
    frame = frame.head(4).copy()
    frame.loc[frame.index[0], "chain"] = None
    frame.loc[frame.index[1], "apy_rolling_7d_std"] = np.nan
    features = contract["numeric"] + contract["categorical"]
    X = to_matrix(frame, features, contract["categorical"])
    assert X.dtype == object and X.shape == (4, len(features))
    chain = features.index("chain")
    assert X[0, chain] == "unknown" and all(isinstance(v, str) for v in X[:, chain])
    std = features.index("apy_rolling_7d_std")
    assert isinstance(X[1, std], float) and np.isnan(X[1, std])
    assert X[2, features.index("apy")] == pytest.approx(frame["apy"].iloc[2])


def _mixed(frame):
    frame = frame.copy()
    frame.loc[frame.index[:10], "apy_drop_threshold"] = 0.0
    return frame


@pytest.mark.parametrize(
    "mutate,match",
    [
        (lambda f: f.iloc[0:0], "empty"),
        (lambda f: f.assign(is_apy_kept=1), "single-class"),
        (_mixed, "apy_drop_threshold.*mixed label settings"),
        (
            lambda f: f.assign(apy_future_stat=np.where(np.arange(len(f)) % 2, "mean", "median")),
            "apy_future_stat.*mixed",
        ),
        (
            lambda f: f.drop(columns=["tvl_usd_change_7d"]),
            r"misses column\(s\) \['tvl_usd_change_7d'\]",
        ),
        (lambda f: f.drop(columns=["horizon_days"]), "label-setting column 'horizon_days'"),
        (lambda f: f.assign(apy=-1.0), "empty after dropping"),
        (lambda f: f.assign(is_apy_kept=np.where(np.arange(len(f)) % 2, 1, 2)), "not 0/1"),
    ],
)
def test_bad_training_sets_fail_with_a_named_problem(small, mutate, match):
    frame, contract = small
    with pytest.raises(TrainingError, match=match):
        prepare(mutate(frame), contract)


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        (1e39, "beyond float32's range"),
        (-3.5e38, "beyond float32's range"),
        (np.inf, "infinite"),
        ("abc", "not a number"),
    ],
)
def test_an_unusable_value_is_named_by_column_and_row(small, value, kind):
    """tvl_usd = 1e39 passed every check before and failed `train` without
    naming the column (the trees compare float32)."""
    frame, contract = small
    frame = frame.copy()
    column = contract["numeric"][0]
    frame[column] = frame[column].astype(object)
    frame.loc[frame.index[7], column] = value
    with pytest.raises(TrainingError) as error:
        prepare(frame, contract)
    message = str(error.value)
    assert f"column {column!r}" in message and kind in message
    pool, day = frame["pool_id"].iloc[7], frame["snapshot_date"].iloc[7]
    assert f"pool_id={pool}" in message and f"snapshot_date={day}" in message


def test_load_names_missing_files(tmp_path, small):
    frame, contract = small
    with pytest.raises(TrainingError, match="no training set"):
        load_training_set(tmp_path / "missing.parquet", tmp_path / "fc.json")
    frame.to_parquet(tmp_path / "ts.parquet")
    with pytest.raises(TrainingError, match="no feature columns"):
        load_training_set(tmp_path / "ts.parquet", tmp_path / "fc.json")
    (tmp_path / "fc.json").write_text(json.dumps(contract))
    data = load_training_set(tmp_path / "ts.parquet", tmp_path / "fc.json")
    assert len(data.frame) > 0 and data.y.dtype.kind == "i"
    # dates come back as dates from parquet and the label windows are H days long
    gap = (data.frame["label_window_end_date"] - data.frame["snapshot_date"]).dt.days
    assert (gap == 30).all()
    assert isinstance(data.frame["snapshot_date"].iloc[0], pd.Timestamp)


def test_the_drift_reference_rows_are_checked_and_cut_to_the_newest_eligible_days(tmp_path, small):
    """drift_reference_features: the newest 30 days of eligible rows; a file
    that misses a feature, holds a bad number, a duplicate key or no eligible
    row is refused by name."""
    frame, contract = small
    data = prepare(frame, contract)
    features = frame.drop(columns=["is_apy_kept", "apy_future"]).copy()
    path = tmp_path / "drift_reference_features.parquet"
    features.to_parquet(path)
    kept = load_reference_features(path, data)
    dates = pd.to_datetime(features["snapshot_date"])
    newest = dates.max()
    expected = features[
        (dates > newest - pd.Timedelta(days=30))
        & (features["apy"] > 0)
        & (features["observed_day_count"] >= 7)
    ]
    assert len(kept) == len(expected) > 0
    assert kept["snapshot_date"].min() == newest - pd.Timedelta(days=29)
    bad = {
        "misses column\\(s\\) \\['tvl_usd'\\]": features.drop(columns=["tvl_usd"]),
        "column 'tvl_usd' holds 1 value\\(s\\) that are infinite": features.assign(
            tvl_usd=lambda f: f["tvl_usd"].where(f.index != 3, np.inf)
        ),
        "rows sharing a \\(pool_id, snapshot_date\\) key": pd.concat([features, features.iloc[:1]]),
        "no eligible row in its newest 30 days": features.assign(apy=0.0),
        "holds no rows": features.iloc[:0],
    }
    for message, broken in bad.items():
        broken.to_parquet(path)
        with pytest.raises(TrainingError, match=f"{path.name}.*{message}|{message}"):
            load_reference_features(path, data)
