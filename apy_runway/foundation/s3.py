"""S3 plumbing shared by training's upload, `publish` and `score`: clients, a
local S3 server, and the one run-folder upload.

The local run serves S3 from moto's ThreadedMotoServer on 127.0.0.1 (a free
port), so the Lambda's core runs against real boto3 clients without AWS.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
from botocore.exceptions import ClientError

from apy_runway.foundation.console import UserError
from inference import contracts

# Dummy credentials for the local server only: moto accepts any.
LOCAL_CREDENTIALS = {
    "aws_access_key_id": "local",
    "aws_secret_access_key": "local",
    "region_name": "us-east-1",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def local_s3_server() -> Iterator[str]:
    """Yield the URL of a moto S3 server on 127.0.0.1; stopped on exit."""
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


def s3_client(endpoint_url: str | None = None, local: bool = False) -> Any:
    """A boto3 S3 client; endpoint_url None means boto3's default (AWS_ENDPOINT_URL
    or AWS). `local` adds the dummy credentials a local server accepts."""
    return boto3.client(
        "s3", endpoint_url=endpoint_url or None, **(LOCAL_CREDENTIALS if local else {})
    )


def ensure_bucket(client: Any, bucket: str) -> None:
    """Create the bucket unless it exists (for local servers)."""
    try:
        client.head_bucket(Bucket=bucket)
    except ClientError:
        region = client.meta.region_name
        if region and region != "us-east-1":
            client.create_bucket(
                Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": region}
            )
        else:
            client.create_bucket(Bucket=bucket)


def parse_s3_url(url: str) -> tuple[str, str]:
    """s3://bucket/prefix -> (bucket, prefix without slashes at the ends)."""
    if not url.startswith("s3://") or len(url) <= 5:
        raise UserError(f"expected s3://bucket/prefix, got {url!r}")
    bucket, _, prefix = url[5:].partition("/")
    if not bucket:
        raise UserError(f"expected s3://bucket/prefix, got {url!r}")
    return bucket, prefix.strip("/")


def upload_run(client: Any, bucket: str, prefix: str, run_dir: Path) -> list[str]:
    """Upload the run folder's top-level files (model, metadata, reports) under prefix.

    metadata.json goes last: a Lambda cold start in between sees the old metadata
    and a new model, which the sha256 check refuses, never a silent mix.
    """
    keys = []
    files = sorted(
        Path(run_dir).iterdir(), key=lambda p: (p.name == contracts.MODEL_METADATA_FILE, p.name)
    )
    for path in files:
        if path.is_file():
            key = prefix + path.name
            client.upload_file(str(path), bucket, key)
            keys.append(key)
    return keys
