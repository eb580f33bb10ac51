"""Shared fixtures: a local S3 (moto's server on 127.0.0.1) and project homes."""
from __future__ import annotations

import os

import boto3
import pytest

from apy_runway.local_s3 import local_s3_server
from apy_runway.paths import project_paths

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
