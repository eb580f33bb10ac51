"""inference/contracts.py is the one home of shared facts: the copies that must
exist elsewhere (serverless.yml, the dbt source, the generator's schema) are held
equal to it, and the rule boundaries no other test pins are pinned here:
the confidence bin at its cut-points, the 7-day eligibility through training
and serving, and the by-pool bootstrap interval."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from fixtures.tiny_model import feature_file

from apy_runway.landing.generate import SCHEMA
from inference import contracts, features
from inference.model import portable
from inference.publication import score_published
from models_py.data import prepare
from models_py.evaluate import bootstrap_auc_by_pool, hit_rate_by_confidence

REPO = Path(__file__).resolve().parents[1]


class _IgnoreTags(yaml.SafeLoader):
    """serverless.yml uses CloudFormation tags (!Ref ...): read them as plain values."""


_IgnoreTags.add_multi_constructor("!", lambda loader, suffix, node: None)


@pytest.fixture(scope="module")
def serverless() -> dict:
    return yaml.load((REPO / "serverless.yml").read_text(), Loader=_IgnoreTags)


# --------------------------------------------------------------------------- copies


def test_serverless_yml_repeats_the_s3_layout_and_limits_of_the_contracts(serverless):
    custom = serverless["custom"]
    assert custom["modelPrefix"] == contracts.MODEL_PREFIX
    assert custom["featuresKey"] == contracts.FEATURES_KEY
    assert contracts.FEATURES_KEY != contracts.FEATURES_JSON_KEY
    assert custom["predictionsPrefix"] == contracts.PREDICTIONS_PREFIX
    assert custom["latestPredictions"] == contracts.LATEST_PREDICTIONS_NAME
    # the scorer's role may write the hour's keys only: the prefix must be the contract's
    hourly = contracts.hourly_predictions_key(custom["predictionsPrefix"], dt.datetime(2025, 6, 6))
    assert hourly.startswith(custom["predictionsPrefix"] + custom["hourlyPredictions"])
    assert hourly.count("/") == (custom["predictionsPrefix"] + custom["hourlyPredictions"]).count(
        "/"
    )
    assert float(custom["staleAfterHours"]) == contracts.FEATURES_STALE_AFTER_HOURS
    assert custom["watchlistKey"] == contracts.WATCHLIST_KEY
    assert custom["watchStateKey"] == contracts.WATCH_STATE_KEY
    environment = serverless["provider"]["environment"]
    assert environment["APY_RUNWAY_STALE_AFTER_HOURS"] == "${self:custom.staleAfterHours}"
    # the 66-feature model's rows are ~2.5 kB: the deployed cap may only be lower
    assert 0 < int(environment["APY_RUNWAY_MAX_BATCH_ROWS"]) <= contracts.MAX_BATCH_ROWS
    # the scorer's safety net runs after the hour's refresh should have published
    [scorer] = [f for f in serverless["functions"].values() if f["handler"].endswith("scheduled")]
    [schedule] = [event["schedule"] for event in scorer["events"] if "schedule" in event]
    assert schedule["rate"] == contracts.SAFETY_NET_SCHEDULE


def test_the_dbt_source_and_the_generator_use_the_raw_contract():
    sources = yaml.safe_load(
        (REPO / "dbt_project/models/staging/_defillama__sources.yml").read_text()
    )
    [table] = [t for s in sources["sources"] for t in s["tables"] if t["name"] == "pool_snapshots"]
    # the raw store: the contract, then the landing order and the day partition
    assert tuple(c["name"] for c in table["columns"]) == (
        *contracts.RAW_COLUMNS,
        contracts.RAW_LANDING_ORDER_COLUMN,
        contracts.RAW_PARTITION_COLUMN,
    )
    assert tuple(SCHEMA.names) == contracts.RAW_COLUMNS
    from apy_runway.landing.ingest.store import STORED_COLUMNS

    assert (*contracts.RAW_COLUMNS, contracts.RAW_LANDING_ORDER_COLUMN) == STORED_COLUMNS


def test_contracts_types_are_written_as_strings():
    assert all(isinstance(kind, str) and kind.isupper() for _, kind in contracts.RAW_CONTRACT)
    assert set(contracts.RAW_REQUIRED_COLUMNS) <= set(contracts.RAW_COLUMNS)
    assert contracts.LABEL_COLUMN not in contracts.LABEL_SETTING_COLUMNS


# --------------------------------------------------------------------------- the bin


@pytest.mark.parametrize(
    ("probability", "expected"),
    [
        (50.0, 1),
        (59.999, 1),
        (60.0, 1),
        (60.0001, 2),
        (75.0, 2),
        (75.0001, 3),
        (100.0, 3),
    ],
)
def test_a_value_equal_to_a_cut_point_goes_to_the_lower_bin(probability, expected):
    assert contracts.confidence_bin(probability, (60.0, 75.0)) == expected
    as_array = contracts.confidence_bin(np.array([probability]), (60.0, 75.0))
    assert as_array.tolist() == [expected]


def test_equal_cut_points_leave_the_middle_bin_empty():
    shown = np.array([70.0, 80.0, 80.0, 90.0])
    assert contracts.confidence_bin(shown, (80.0, 80.0)).tolist() == [1, 1, 1, 3]


def test_the_shown_probability_and_class_follow_defillama():
    p_keep = np.linspace(0.25, 1.0, 301)
    np.testing.assert_array_equal(
        contracts.predicted_probability(p_keep), 100 * np.maximum(p_keep, 1 - p_keep)
    )
    assert contracts.predicted_probability(0.1) == pytest.approx(90.0)
    assert contracts.predicted_class_is_down(0.5) and not contracts.predicted_class_is_down(0.51)


def test_training_bins_hit_rates_with_the_same_tie_rule():
    # p_keep 0.6 -> shown 60.0, exactly the first cut-point: bin 1, not 2
    table = hit_rate_by_confidence(np.array([1, 1, 1]), np.array([0.6, 0.7, 0.9]), [60.0, 80.0])
    assert table["rows"].tolist() == [1, 1, 1]


# --------------------------------------------------------------------------- eligibility


def _training_frame(observed_days: list[int], apy: list[float]) -> pd.DataFrame:
    n = len(observed_days)
    return pd.DataFrame(
        {
            "pool_id": [f"p{i}" for i in range(n)],
            "snapshot_date": pd.to_datetime(["2025-01-01"] * n),
            "is_apy_kept": [i % 2 for i in range(n)],
            "apy": apy,
            "observed_day_count": observed_days,
            "x": np.arange(n, dtype=float),
            "horizon_days": 30,
            "apy_drop_threshold": -0.2,
            "apy_future_stat": "median",
            "min_future_coverage": 0.5,
            "dead_pool_is_dropped": True,
        }
    )


def test_training_keeps_rows_from_seven_observed_days_and_positive_apy():
    frame = _training_frame([6, 7, 8, 7, 7, 8], [5.0, 5.0, 5.0, 0.0, 1e-9, -1.0])
    data = prepare(frame, {"numeric": ["x"], "categorical": []})
    assert sorted(data.frame["pool_id"]) == ["p1", "p2", "p4"]
    assert data.dropped["not_eligible"] == 3


def test_serving_scores_pools_from_seven_observed_days_and_positive_apy(tiny_run):
    model = portable.load(
        json.loads((tiny_run / "model_spec.json").read_text()),
        portable.read_arrays((tiny_run / "model_arrays.npz").read_bytes()),
    )

    def edit(columns, contract):
        columns.update(observed_day_count=[6, 7, 8, 7, 7, 8], apy=[5.0, 5.0, 5.0, 0.0, 1e-9, -1.0])

    table = features.decode(feature_file(6, snapshot_date="2025-06-05", edit=edit))
    result = score_published(model, table, dt.datetime(2025, 6, 6, tzinfo=dt.UTC), 48.0)
    status = [p["status"] for p in result["predictions"]]
    assert status == ["not scored", "scored", "scored", "not scored", "scored", "not scored"]
    reasons = [p["reason"] for p in result["predictions"]]
    assert reasons[0] == f"observed_day_count < {contracts.MIN_OBSERVED_DAYS}"
    assert reasons[3] == reasons[5] == f"apy <= {contracts.MIN_APY_EXCLUSIVE:g}"


# --------------------------------------------------------------------------- bootstrap CI


def _pools(n_pools: int, seed: int = 0, separable: bool = False):
    rng = np.random.default_rng(seed)
    y, p, pools = [], [], []
    for pool in range(n_pools):
        labels = rng.integers(0, 2, 20)
        scores = labels + (0.1 if separable else 1.5) * rng.normal(size=20)
        if separable:
            scores = labels + 0.01 * rng.random(20)
        y += labels.tolist()
        p += scores.tolist()
        pools += [pool] * 20
    return np.array(y), np.array(p), np.array(pools)


def test_perfect_separation_gives_a_degenerate_interval_at_one():
    y, p, pools = _pools(30, separable=True)
    ci = bootstrap_auc_by_pool(y, p, pools, samples=100)
    assert ci["low"] == ci["high"] == 1.0


def test_the_interval_narrows_as_pools_are_added():
    widths = []
    for n_pools in (10, 40, 160):
        y, p, pools = _pools(n_pools, seed=1)
        ci = bootstrap_auc_by_pool(y, p, pools, samples=200)
        widths.append(ci["high"] - ci["low"])
    assert widths[0] > widths[1] > widths[2] > 0


def test_a_95_percent_interval_is_wider_than_a_90_percent_one():
    y, p, pools = _pools(40, seed=2)
    wide = bootstrap_auc_by_pool(y, p, pools, samples=300, level=0.95)
    narrow = bootstrap_auc_by_pool(y, p, pools, samples=300, level=0.90)
    assert wide["level"] == 0.95 and narrow["level"] == 0.90
    assert wide["low"] < narrow["low"] and wide["high"] > narrow["high"]


def test_serverless_yml_lets_the_scorer_write_the_monitoring_and_ledger_prefixes(serverless):
    custom = serverless["custom"]
    assert custom["monitoringPrefix"] == contracts.MONITORING_PREFIX
    assert custom["ledgerPrefix"] == contracts.LEDGER_PREFIX
    environment = serverless["provider"]["environment"]
    assert environment["APY_RUNWAY_MONITORING_PREFIX"] == "${self:custom.monitoringPrefix}"
    assert environment["APY_RUNWAY_LEDGER_PREFIX"] == "${self:custom.ledgerPrefix}"


def test_the_dbt_drift_reference_window_is_the_contracts():
    """drift_reference_features exports the newest var drift_reference_days
    days; training keeps the newest contracts.DRIFT_REFERENCE_DAYS of them."""
    project = yaml.safe_load((REPO / "dbt_project/dbt_project.yml").read_text())
    assert project["vars"]["drift_reference_days"] == contracts.DRIFT_REFERENCE_DAYS


def test_environment_variable_names_live_in_contracts_only(serverless):
    """No module but contracts.py spells an APY_RUNWAY_ or AWS_ENDPOINT variable; the
    names serverless.yml sets and profiles.yml reads are the contracts' own."""
    spelled = re.compile(r"[\"'](APY_RUNWAY_[A-Z_]+|AWS_ENDPOINT_URL\w*)[\"']")
    offenders = [
        f"{path.relative_to(REPO)}: {name}"
        for package in ("inference", "models_py", "apy_runway")
        for path in (REPO / package).rglob("*.py")
        if path.name != "contracts.py"
        for name in spelled.findall(path.read_text())
    ]
    assert not offenders, offenders
    known = {*contracts.ENVIRONMENT.values(), contracts.ENV_S3_ENDPOINT}
    known |= {value for name, value in vars(contracts).items() if name.startswith("ENV_")}
    assert set(serverless["provider"]["environment"]) <= known
    profile_names = set(
        re.findall(r"env_var\('(APY_RUNWAY_[A-Z_]+)'", (REPO / "profiles.yml").read_text())
    )
    dbt_names = {
        contracts.ENV_DATA_DIR,
        contracts.ENV_DUCKDB_PATH,
        contracts.ENV_DUCKDB_MEMORY_LIMIT,
    }
    assert dbt_names <= profile_names
    assert {n for n in profile_names if "SPARK" not in n} <= known
