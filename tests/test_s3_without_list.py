"""The deployed roles may not list the bucket, and S3 then answers a GET or HEAD
of a missing key with 403 AccessDenied, not 404. moto answers 404 even with
IAM enforcement on, so these tests talk to moto through a proxy on 127.0.0.1
that answers 403 for missing keys (tests/fixtures/s3_proxy.py).

On a fresh bucket the hourly run must still create latest.json, a lookup
before the first publication must answer 503 no_published_predictions (not
500), and a missing model must answer 503 model_unavailable (not 500).
"""

from __future__ import annotations

import json

import boto3
import pytest
from botocore.exceptions import ClientError
from fixtures.s3_proxy import denying_missing_keys
from fixtures.tiny_model import load_event

from inference import handler, service


@pytest.fixture
def behind_proxy(lambda_env, moto_endpoint, monkeypatch):
    """lambda_env, with the handler's S3 client pointed at the denying proxy."""
    with denying_missing_keys(moto_endpoint) as (url, denied):
        monkeypatch.setenv("AWS_ENDPOINT_URL", url)
        yield lambda_env, url, denied


def test_the_proxy_answers_403_for_a_missing_key_and_forwards_the_rest(behind_proxy):
    bucket, url, denied = behind_proxy
    client = boto3.client("s3", endpoint_url=url, region_name="us-east-1")
    with pytest.raises(ClientError) as head:
        client.head_object(Bucket=bucket, Key="predictions/latest.json")
    with pytest.raises(ClientError) as get:
        client.get_object(Bucket=bucket, Key="predictions/latest.json")
    assert head.value.response["Error"]["Code"] == "403"
    assert get.value.response["Error"]["Code"] == "AccessDenied"
    assert client.head_object(Bucket=bucket, Key="models/latest/metadata.json")["ContentLength"] > 0
    latest = f"/{bucket}/predictions/latest.json"
    assert denied == [("HEAD", latest), ("GET", latest)]


def test_without_list_permission_the_first_hourly_run_creates_latest_and_lookups_wait_for_it(
    behind_proxy, s3_client, context
):
    bucket, _, denied = behind_proxy
    before = handler.http(load_event("http_lookup.json"), context)
    assert before["statusCode"] == 503, before
    assert json.loads(before["body"])["error"] == "no_published_predictions"

    summary = handler.scheduled(load_event("scheduled.json"), context)
    assert summary["latest_key"] == "predictions/latest.json"
    assert summary["latest_written"] is True
    latest = s3_client.get_object(Bucket=bucket, Key="predictions/latest.json")
    assert latest["ETag"] == summary["latest_etag"]
    assert json.loads(latest["Body"].read())["event_time"] == "2025-06-06T00:00:00Z"
    # the 403s really were on the way: the lookup's GET and the run's HEAD
    assert ("GET", f"/{bucket}/predictions/latest.json") in denied
    assert ("HEAD", f"/{bucket}/predictions/latest.json") in denied

    after = handler.http(load_event("http_lookup.json"), context)
    assert after["statusCode"] == 200
    assert json.loads(after["body"])["event_time"] == "2025-06-06T00:00:00Z"


def test_without_list_permission_a_missing_model_is_503_not_500(behind_proxy, context, monkeypatch):
    bucket, _, denied = behind_proxy
    monkeypatch.setenv("APY_RUNWAY_MODEL_PREFIX", "models/never-published/")
    response = handler.http(load_event("http_rows.json"), context)
    body = json.loads(response["body"])
    assert response["statusCode"] == 503, response
    assert body["error"] == "model_unavailable" and body["request_id"] == context.aws_request_id
    assert denied == [("GET", f"/{bucket}/models/never-published/metadata.json")]


def test_a_403_on_an_existing_latest_never_lets_the_run_overwrite_it(
    lambda_env, moto_endpoint, s3_client, context, monkeypatch
):
    """403 is read as "absent" only because the write after it is conditional: a
    role that cannot read an existing latest.json gets 412 on If-None-Match: *,
    retries, and fails the run without touching it."""
    newer = b'{"event_time": "2025-06-06T09:00:00Z", "predictions": []}'
    s3_client.put_object(
        Bucket=lambda_env,
        Key="predictions/latest.json",
        Body=newer,
        Metadata={"event-time": "2025-06-06T09:00:00Z"},
    )
    unreadable = (f"/{lambda_env}/predictions/latest.json",)
    with denying_missing_keys(moto_endpoint, unreadable) as (url, denied):
        monkeypatch.setenv("AWS_ENDPOINT_URL", url)
        with pytest.raises(service.LatestConflict, match="cannot be read"):
            handler.scheduled(load_event("scheduled.json"), context)
    # one HEAD when the model is loaded (the highest version served), one for the
    # shrink rule and the first conditional write, then one per further attempt
    assert len(denied) == 1 + service.LATEST_WRITE_ATTEMPTS
    latest = s3_client.get_object(Bucket=lambda_env, Key="predictions/latest.json")
    assert latest["Body"].read() == newer
    hourly = s3_client.head_object(Bucket=lambda_env, Key="predictions/hourly/2025-06-06T00Z.json")
    assert hourly["ContentLength"] > 0
