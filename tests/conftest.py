"""Shared fixtures: a local S3 (moto's server on 127.0.0.1) and project homes."""
from __future__ import annotations

import os
import socket

import boto3
import pytest

from apy_runway.paths import project_paths

# Never let a test reach AWS: dummy credentials, and every client is pointed at
# the local moto server explicitly.
os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def moto_endpoint():
    """URL of a real moto S3 server (ThreadedMotoServer) on 127.0.0.1."""
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def s3_client(moto_endpoint):
    return boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")


@pytest.fixture
def project_home(tmp_path):
    """An empty project home (data/, runs/) in a temporary folder."""
    return project_paths(tmp_path / "home").ensure()
