"""S3 plumbing shared by `publish` and `score`: a local S3 server and clients.

The local run serves S3 from moto's ThreadedMotoServer on 127.0.0.1 (a free
port), so the Lambda handler runs against real boto3 clients without AWS.
"""
from __future__ import annotations

import contextlib
import os
import socket
from typing import Iterator

import boto3
from botocore.exceptions import ClientError

# Dummy credentials for the local server only: moto accepts any.
LOCAL_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "local",
    "AWS_SECRET_ACCESS_KEY": "local",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def local_s3_server() -> Iterator[str]:
    """Yield the URL of a moto S3 server on 127.0.0.1; stopped on exit."""
    import logging

    from moto.server import ThreadedMotoServer

    # one access-log line per request would bury the score table
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


@contextlib.contextmanager
def environment(**values: str | None) -> Iterator[None]:
    """Set (or, with None, unset) environment variables for the block only."""
    saved = {name: os.environ.get(name) for name in values}
    try:
        for name, value in values.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def s3_client(endpoint_url: str | None = None):
    """A boto3 S3 client; endpoint_url None means boto3's default (AWS_ENDPOINT_URL or AWS)."""
    return boto3.client("s3", endpoint_url=endpoint_url or None)


def ensure_bucket(client, bucket: str) -> None:
    """Create the bucket unless it exists (for local servers)."""
    try:
        client.head_bucket(Bucket=bucket)
    except ClientError:
        region = client.meta.region_name
        if region and region != "us-east-1":
            client.create_bucket(Bucket=bucket,
                                 CreateBucketConfiguration={"LocationConstraint": region})
        else:
            client.create_bucket(Bucket=bucket)

