"""Shared helpers for the inference tests: a tiny real model, its run folder,
published features on the local S3 server, and a fake Lambda context.

The tiny model honours the training contract (one sklearn Pipeline fitted on a
2-D object array whose columns are metadata["features"]), so these tests do not
depend on the training code. Other test modules import the fixtures by name.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from dataclasses import dataclass
from importlib import metadata as importlib_metadata
from pathlib import Path

import joblib
import numpy as np
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.impute import SimpleImputer
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

from apy_runway.publish import columnar_payload, upload_features, upload_run

EVENTS = Path(__file__).parent / "events"
NUMERIC = ["apy", "tvl_usd", "apy_rolling_7d_mean", "apy_expanding_std"]
CATEGORICAL = ["chain", "project"]
FEATURES = NUMERIC + CATEGORICAL
CHAINS = ["Ethereum", "Arbitrum", "Base"]
PROJECTS = ["aave-v3", "morpho-blue", "euler-v2"]


@dataclass
class LambdaContext:
    function_name: str = "apy-runway-test"
    memory_limit_in_mb: int = 1024
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:000000000000:function:apy-runway-test"
    aws_request_id: str = "00000000-0000-0000-0000-000000000000"


def synthetic_rows(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Object matrix (numerics float with NaN, categoricals str/None) and a label."""
    rng = np.random.default_rng(seed)
    apy = rng.gamma(2.0, 3.0, n)
    rolling = apy * rng.normal(1.0, 0.3, n)
    X = np.empty((n, len(FEATURES)), dtype=object)
    X[:, 0] = apy
    X[:, 1] = rng.lognormal(14, 2, n)
    X[:, 2] = rolling
    X[:, 3] = np.abs(rng.normal(1.0, 0.5, n))
    X[:, 4] = rng.choice(CHAINS, n)
    X[:, 5] = rng.choice(PROJECTS, n)
    X[rng.random(n) < 0.05, 3] = np.nan
    X[rng.random(n) < 0.05, 4] = None
    y = (rolling >= apy * 0.9).astype(int)
    return X, y


def build_tiny_model(seed: int = 0):
    numeric_idx = list(range(len(NUMERIC)))
    categorical_idx = list(range(len(NUMERIC), len(FEATURES)))
    pipeline = make_pipeline(
        ColumnTransformer([
            ("numeric", SimpleImputer(strategy="median"), numeric_idx),
            ("categorical", make_pipeline(
                SimpleImputer(missing_values=None, strategy="constant", fill_value="unknown"),
                OneHotEncoder(handle_unknown="ignore"),
            ), categorical_idx),
        ]),
        RandomForestClassifier(n_estimators=8, max_depth=4, random_state=seed),
    )
    X, y = synthetic_rows(400, seed)
    return pipeline.fit(X, y)


def write_run(run_dir: Path, model=None, **overrides) -> dict:
    """runs/<run_id>/ with model.joblib + metadata.json following the contract."""
    run_dir.mkdir(parents=True, exist_ok=True)
    joblib.dump(model if model is not None else build_tiny_model(), run_dir / "model.joblib")
    data = (run_dir / "model.joblib").read_bytes()
    versions = {name: importlib_metadata.version(name)
                for name in ("scikit-learn", "numpy", "scipy", "joblib", "pandas")}
    metadata = {
        "model_id": f"tiny-forest-{run_dir.name}",
        "model_name": "random_forest",
        "model_file": "model.joblib",
        "model_sha256": hashlib.sha256(data).hexdigest(),
        "model_size_bytes": len(data),
        "features": FEATURES,
        "numeric_features": NUMERIC,
        "categorical_features": CATEGORICAL,
        "label": {"column": "is_apy_kept", "horizon_days": 30, "apy_drop_threshold": -0.2,
                  "apy_future_stat": "median", "min_future_coverage": 0.5,
                  "dead_pool_is_dropped": True},
        "eligibility": {"min_apy_exclusive": 0, "min_observed_days": 7},
        "confidence_cutpoints": [60.0, 75.0],
        "library_versions": {"python": "3.12", **versions},
        "metrics": {}, "training": {}, "created_at": "2026-01-01T00:00:00Z",
    }
    metadata.update(overrides)
    (run_dir / "metadata.json").write_text(json.dumps(metadata, indent=2))
    return metadata


def feature_columns(n: int, snapshot_date: str = "2025-06-05", seed: int = 1) -> dict:
    """Column-wise latest features for n pools (as `publish` produces them)."""
    X, _ = synthetic_rows(n, seed)
    rng = np.random.default_rng(seed)
    columns = {
        "pool_id": [f"pool-{i:05d}" for i in range(n)],
        "snapshot_date": [dt.date.fromisoformat(snapshot_date)] * n,
        "symbol": [f"SYM{i % 17}" for i in range(n)],
        "observed_day_count": rng.integers(1, 400, n).tolist(),
    }
    for j, name in enumerate(FEATURES):
        columns[name] = X[:, j].tolist()
    columns["apy"][0] = 0.0          # DefiLlama skips apy <= 0
    columns["observed_day_count"][0] = 100
    if n > 1:
        columns["observed_day_count"][1] = 3   # ... and pools with fewer than 7 days
    return columnar_payload(columns, {"features": FEATURES, "numeric": NUMERIC,
                                      "categorical": CATEGORICAL})


def load_event(name: str) -> dict:
    return json.loads((EVENTS / name).read_text())


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("runs") / "20250606T000000Z"
    write_run(run_dir)
    return run_dir


@pytest.fixture
def lambda_env(moto_endpoint, s3_client, monkeypatch, tiny_run):
    """A fresh bucket holding the tiny model and 50 pools of features; env set."""
    bucket = f"apy-runway-{uuid.uuid4().hex[:12]}"
    s3_client.create_bucket(Bucket=bucket)
    upload_run(s3_client, bucket, "models/latest/", tiny_run)
    upload_features(s3_client, bucket, "features/latest_features.json", feature_columns(50))
    for name, value in {
        "AWS_ENDPOINT_URL": moto_endpoint,
        "APY_RUNWAY_BUCKET": bucket,
        "APY_RUNWAY_MODEL_PREFIX": "models/latest/",
        "APY_RUNWAY_FEATURES_KEY": "features/latest_features.json",
        "APY_RUNWAY_PREDICTIONS_PREFIX": "predictions/",
    }.items():
        monkeypatch.setenv(name, value)
    return bucket


@pytest.fixture
def context() -> LambdaContext:
    return LambdaContext()


def test_tiny_model_follows_the_training_contract(tiny_run):
    metadata = json.loads((tiny_run / "metadata.json").read_text())
    model = joblib.load(tiny_run / "model.joblib")
    X, _ = synthetic_rows(5, seed=3)
    X[0, 4] = "NeverSeenChain"
    X[1, 3] = np.nan
    proba = model.predict_proba(X)
    assert metadata["features"] == metadata["numeric_features"] + metadata["categorical_features"]
    assert proba.shape == (5, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert hashlib.sha256((tiny_run / "model.joblib").read_bytes()).hexdigest() \
        == metadata["model_sha256"]
