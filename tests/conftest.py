"""Shared fixtures: a local S3 (moto's server on 127.0.0.1), project homes, and
the inference fixtures (a tiny run, a bucket holding it, a Lambda context)."""

from __future__ import annotations

import fcntl
import os
import uuid
from pathlib import Path

import boto3
import pytest
from fixtures.tiny_model import LambdaContext, feature_columns, feature_file, write_run

from apy_runway.foundation.paths import project_paths
from apy_runway.foundation.s3 import local_s3_server, upload_run
from apy_runway.operations.publish import upload_features, upload_features_binary
from inference import contracts

# Never let a test reach AWS: dummy credentials, and every client is pointed at
# the local moto server explicitly.
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
# ... and no signing key leaks in from the shell: tests that sign set their own
os.environ.pop("APY_RUNWAY_SIGNING_KEY", None)
os.environ.pop("APY_RUNWAY_SIGNING_KEY_PARAMETER", None)


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


REAL_SAMPLE = Path("/work/shared/data/defillama_sample/chart_history.csv")


@pytest.fixture(scope="session")
def real_sample_home(tmp_path_factory, worker_id):
    """The real DefiLlama sample (README "Real data"), ingested and built by
    dbt once per run (~15 s; under `pytest -n` the first worker to ask builds it
    in the run's shared temp folder, under a lock, and the others read it);
    skipped where the sample is not mounted."""
    if not REAL_SAMPLE.exists():
        pytest.skip(f"real DefiLlama sample not mounted at {REAL_SAMPLE}")
    from apy_runway.landing.ingest import ingest
    from apy_runway.warehouse.build import export_feature_columns
    from apy_runway.warehouse.dbt import run_dbt

    shared = tmp_path_factory.getbasetemp()
    if worker_id != "master":  # pytest-xdist: every worker's basetemp shares a parent
        shared = shared.parent
    home = shared / "real_sample"
    with (shared / "real_sample.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (home / "built").exists():
            paths = project_paths(home).ensure()
            ingest([REAL_SAMPLE], paths)
            target = home / "dbt_target"
            run_dbt(paths, "build", target_path=target, quiet=True)
            export_feature_columns(paths, target)
            (home / "built").touch()
    return project_paths(home)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("runs") / "20250606T000000Z"
    write_run(run_dir)
    return run_dir


@pytest.fixture
def lambda_env(moto_endpoint, s3_client, monkeypatch, tiny_run):
    """A fresh bucket holding the tiny model and 50 pools of features (the
    binary file the Lambda reads, and the JSON copy); env set."""
    bucket = f"apy-runway-{uuid.uuid4().hex[:12]}"
    s3_client.create_bucket(Bucket=bucket)
    upload_run(s3_client, bucket, "models/latest/", tiny_run)
    upload_features(s3_client, bucket, contracts.FEATURES_JSON_KEY, feature_columns(50))
    upload_features_binary(s3_client, bucket, contracts.FEATURES_KEY, feature_file(50))
    for name in ("APY_RUNWAY_SIGNING_KEY", "APY_RUNWAY_SIGNING_KEY_PARAMETER"):
        monkeypatch.delenv(name, raising=False)
    for name, value in {
        "AWS_ENDPOINT_URL": moto_endpoint,
        "APY_RUNWAY_BUCKET": bucket,
        "APY_RUNWAY_MODEL_PREFIX": "models/latest/",
        "APY_RUNWAY_FEATURES_KEY": contracts.FEATURES_KEY,
        "APY_RUNWAY_PREDICTIONS_PREFIX": "predictions/",
    }.items():
        monkeypatch.setenv(name, value)
    return bucket


@pytest.fixture
def context() -> LambdaContext:
    return LambdaContext()


# The files that take longest start first, so that with `pytest -n` (one file per
# worker, `make test`) no long file starts last and runs alone. Measured with
# `--durations`; a file missing from the list just runs in collection order.
SLOWEST_FIRST = (
    "test_soak_serving.py",
    "test_live_loop.py",
    "test_warm_refresh.py",
    "test_refresh_labels.py",
    "test_incremental.py",
    "test_writer_lock.py",
    "test_dbt_contracts.py",
    "test_leakage.py",
    "test_dbt_features.py",
    "test_benchmarks.py",
    "test_dbt_labels.py",
    "test_train_explore_labels.py",
    "test_dbt_guards.py",
    "test_daily_model.py",
    "test_portable.py",
    "test_board_browser.py",
    "test_train_trust.py",
    "test_soak_landing.py",
    "test_refresh_refused.py",
    "test_train_fits.py",
    "test_train_run.py",
    "test_spec_fuzz.py",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    rank = {name: index for index, name in enumerate(SLOWEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))
