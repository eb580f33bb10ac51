"""Shared fixtures: a local S3 (moto's server on 127.0.0.1), project homes, and
the inference fixtures (a tiny run, a bucket holding it, a Lambda context)."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import boto3
import pytest
from fixtures.tiny_model import LambdaContext, feature_columns, write_run

from apy_runway.foundation.paths import project_paths
from apy_runway.foundation.s3 import local_s3_server, upload_run
from apy_runway.stages.publish import upload_features

# Never let a test reach AWS: dummy credentials, and every client is pointed at
# the local moto server explicitly.
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")


@pytest.fixture(scope="session")
def moto_endpoint():
    """URL of a real moto S3 server (ThreadedMotoServer) on 127.0.0.1: the same
    server the local run (`apy-runway score`) uses."""
    with local_s3_server() as url:
        yield url


@pytest.fixture
def s3_client(moto_endpoint):
    return boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")


@pytest.fixture
def project_home(tmp_path):
    """An empty project home (data/, runs/) in a temporary folder."""
    return project_paths(tmp_path / "home").ensure()


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
