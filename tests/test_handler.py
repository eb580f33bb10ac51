"""The Lambda handler end to end: real boto3 clients against moto's S3 server,
events from tests/events/*.json, the real core and a tiny real model."""

from __future__ import annotations

import json
import logging

import joblib
import numpy as np
import pytest
from fixtures.tiny_model import FEATURES, feature_columns, load_event, write_run

from apy_runway.stages.publish import upload_features
from inference import artefact, handler, settings


def s3_calls(operation: str):
    """Record the keys the handler's own S3 client asks for (botocore event hook)."""
    seen: list[str] = []
    client = handler.s3(settings.current())

    def record(params, **_):
        seen.append(params.get("Key"))

    client.meta.events.register(f"provide-client-params.s3.{operation}", record)
    return seen, lambda: client.meta.events.unregister(
        f"provide-client-params.s3.{operation}", record
    )


def json_lines(caplog) -> list[dict]:
    return [json.loads(r.getMessage()) for r in caplog.records if r.name == "apy_runway.inference"]


@pytest.fixture(autouse=True)
def inference_logs(caplog):
    caplog.set_level(logging.INFO, logger="apy_runway.inference")


def test_cold_load_then_cached_for_the_container(lambda_env, context, tiny_run):
    gets, stop = s3_calls("GetObject")
    loads_before = handler.MODEL_LOADS
    try:
        first = handler.http(load_event("http_rows.json"), context)
        assert gets == ["models/latest/metadata.json", "models/latest/model.joblib"]
        second = handler.http(load_event("http_rows.json"), context)
    finally:
        stop()
    assert gets == ["models/latest/metadata.json", "models/latest/model.joblib"]
    assert loads_before + 1 == handler.MODEL_LOADS
    assert first["statusCode"] == second["statusCode"] == 200
    # loaded single-threaded: a forest's threads only add jitter on a Lambda's vCPUs
    assert all(
        getattr(est, "n_jobs", None) in (None, 1)
        for est in artefact.iter_estimators(handler.get_model(settings.current()).model)
    )
    assert first["body"] == second["body"]


def test_http_rows_are_scored_by_the_model(lambda_env, context, tiny_run):
    event = load_event("http_rows.json")
    response = handler.http(event, context)
    assert response["statusCode"] == 200
    body = json.loads(response["body"])
    rows = json.loads(event["body"])
    model = joblib.load(tiny_run / "model.joblib")
    X = np.array(
        [
            [np.nan if r[f] is None and f not in ("chain", "project") else r[f] for f in FEATURES]
            for r in rows
        ],
        dtype=object,
    )
    np.testing.assert_allclose(body["predictions"], model.predict_proba(X))
    assert [set(r) for r in body["rows"]] == [
        {"predicted_class", "predicted_probability", "binned_confidence"}
    ] * 3
    assert body["model_id"] == f"tiny-forest-{tiny_run.name}"


@pytest.mark.parametrize(
    "event_file, status, code, row, field",
    [
        ("http_bad_not_json.json", 400, "invalid_json", None, None),
        ("http_bad_empty_body.json", 400, "empty_body", None, None),
        ("http_bad_not_list.json", 400, "not_a_list", None, None),
        ("http_bad_empty_list.json", 400, "empty_list", None, None),
        ("http_bad_missing_feature.json", 400, "missing_feature", 1, "tvl_usd"),
        ("http_bad_non_numeric.json", 400, "non_numeric_value", 2, "apy"),
        ("http_bad_nan.json", 400, "non_finite_value", 1, "apy_rolling_7d_mean"),
        ("http_bad_infinity.json", 400, "non_finite_value", 0, "tvl_usd"),
        ("http_bad_overflow.json", 400, "non_finite_value", 0, "tvl_usd"),
        ("http_bad_unknown_type.json", 400, "unknown_type", 1, "chain"),
        ("http_bad_row_not_object.json", 400, "unknown_type", 1, None),
        ("http_wrong_method.json", 405, "method_not_allowed", None, None),
    ],
)
def test_bad_requests_get_a_json_error_naming_row_and_field(
    lambda_env, context, caplog, event_file, status, code, row, field
):
    response = handler.http(load_event(event_file), context)
    body = json.loads(response["body"])
    assert response["statusCode"] == status
    assert body["error"] == code
    assert body.get("row") == row and body.get("field") == field
    assert "Traceback" not in response["body"]
    logged = [line for line in json_lines(caplog) if line["event"] == "bad_request"]
    assert len(logged) == 1 and logged[0]["error"] == code
    assert logged[0]["request_id"] == context.aws_request_id


def test_batch_over_the_documented_size_is_413(lambda_env, context):
    event = load_event("http_rows.json")
    row = json.loads(event["body"])[0]
    event["body"] = json.dumps([row] * 3501)
    response = handler.http(event, context)
    assert response["statusCode"] == 413
    assert json.loads(response["body"])["error"] == "batch_too_large"


def test_unexpected_errors_reach_the_caller_without_a_stack_trace(
    lambda_env, context, caplog, monkeypatch
):
    monkeypatch.setenv("APY_RUNWAY_BUCKET", "no-such-bucket-apy-runway")
    response = handler.http(load_event("http_rows.json"), context)
    assert response["statusCode"] == 500
    assert "Traceback" not in response["body"] and "NoSuchBucket" not in response["body"]
    [line] = [r for r in caplog.records if r.name == "apy_runway.inference"]
    assert "\n" not in line.getMessage()
    logged = json.loads(line.getMessage())
    assert logged["event"] == "internal_error" and "NoSuchBucket" in logged["traceback"]


def test_tampered_model_is_refused_before_unpickling(
    lambda_env, context, s3_client, tmp_path, caplog
):
    marker = tmp_path / "unpickled"

    class Payload:  # unpickling this would create the marker file
        def __reduce__(self):
            return (open, (str(marker), "w"))

    joblib.dump(Payload(), tmp_path / "evil.joblib")
    s3_client.put_object(
        Bucket=lambda_env,
        Key="models/latest/model.joblib",
        Body=(tmp_path / "evil.joblib").read_bytes(),
    )
    loads_before = handler.MODEL_LOADS
    response = handler.http(load_event("http_rows.json"), context)
    body = json.loads(response["body"])
    assert response["statusCode"] == 503
    assert body["error"] == "model_unavailable" and "sha256 mismatch" in body["message"]
    assert not marker.exists()
    assert loads_before == handler.MODEL_LOADS
    with pytest.raises(Exception, match="sha256 mismatch"):
        handler.scheduled(load_event("scheduled.json"), context)
    assert [line["event"] for line in json_lines(caplog)] == [
        "model_unavailable",
        "scheduled_failed",
    ]


def test_scikit_learn_version_mismatch_is_refused(lambda_env, context, s3_client, tmp_path):
    run_dir = tmp_path / "old-run"
    metadata = write_run(run_dir)
    metadata["library_versions"]["scikit-learn"] = "1.5.2"
    s3_client.put_object(
        Bucket=lambda_env, Key="models/latest/metadata.json", Body=json.dumps(metadata)
    )
    gets, stop = s3_calls("GetObject")
    try:
        response = handler.http(load_event("http_rows.json"), context)
    finally:
        stop()
    body = json.loads(response["body"])
    assert response["statusCode"] == 503
    assert "scikit-learn version mismatch" in body["message"] and "1.5.2" in body["message"]
    assert gets == ["models/latest/metadata.json"]  # the model file is never read


def list_keys(s3_client, bucket: str) -> list[str]:
    listed = s3_client.list_objects_v2(Bucket=bucket, Prefix="predictions/")
    return sorted(item["Key"] for item in listed.get("Contents", []))


def test_scheduled_run_is_idempotent_per_event_hour(lambda_env, context, s3_client):
    event = load_event("scheduled.json")
    first = handler.scheduled(event, context)
    body_first = s3_client.get_object(Bucket=lambda_env, Key=first["hourly_key"])["Body"].read()
    second = handler.scheduled(event, context)
    body_second = s3_client.get_object(Bucket=lambda_env, Key=second["hourly_key"])["Body"].read()
    assert list_keys(s3_client, lambda_env) == [
        "predictions/hourly/2025-06-06T00Z.json",
        "predictions/latest.json",
    ]
    assert first == second and body_first == body_second
    published = json.loads(body_first)
    assert (
        len({p["pool_id"] for p in published["predictions"]}) == 50 == len(published["predictions"])
    )
    assert first["scored"] + first["not_scored"] == 50 and first["not_scored"] >= 2
    assert first["stale"] == 0


def test_older_retried_event_does_not_roll_latest_back(lambda_env, context, s3_client):
    later = dict(load_event("scheduled.json"), time="2025-06-06T05:00:00Z")
    handler.scheduled(later, context)
    summary = handler.scheduled(load_event("scheduled.json"), context)
    assert summary["latest_key"] is None
    latest = json.loads(
        s3_client.get_object(Bucket=lambda_env, Key="predictions/latest.json")["Body"].read()
    )
    assert latest["event_time"] == "2025-06-06T05:00:00Z"
    assert list_keys(s3_client, lambda_env) == [
        "predictions/hourly/2025-06-06T00Z.json",
        "predictions/hourly/2025-06-06T05Z.json",
        "predictions/latest.json",
    ]


def test_stale_features_are_scored_flagged_and_logged(lambda_env, context, s3_client, caplog):
    event = dict(load_event("scheduled.json"), time="2025-06-12T00:00:00Z")
    summary = handler.scheduled(event, context)
    assert summary["stale"] == 50 and summary["scored"] > 0
    published = json.loads(
        s3_client.get_object(Bucket=lambda_env, Key=summary["hourly_key"])["Body"].read()
    )
    assert all(p["is_stale"] for p in published["predictions"])
    [warning] = [line for line in json_lines(caplog) if line["event"] == "stale_features"]
    assert warning["stale"] == 50 and warning["feature_date_max"] == "2025-06-05"


def test_published_features_missing_a_model_feature_fail_the_run(
    lambda_env, context, s3_client, caplog
):
    payload = feature_columns(10)
    del payload["columns"]["chain"]
    payload["features"].remove("chain")
    upload_features(s3_client, lambda_env, "features/latest_features.json", payload)
    with pytest.raises(Exception, match="chain"):
        handler.scheduled(load_event("scheduled.json"), context)
    assert list_keys(s3_client, lambda_env) == []
    assert json_lines(caplog)[-1]["event"] == "scheduled_failed"


def test_lookup_answers_from_the_latest_published_predictions(lambda_env, context):
    before = handler.http(load_event("http_lookup.json"), context)
    assert before["statusCode"] == 503
    assert json.loads(before["body"])["error"] == "no_published_predictions"
    handler.scheduled(load_event("scheduled.json"), context)
    response = handler.http(load_event("http_lookup.json"), context)
    body = json.loads(response["body"])
    assert response["statusCode"] == 200
    assert [p["pool_id"] for p in body["pools"]] == ["pool-00002", "pool-00003"]
    assert body["not_found"] == ["no-such-pool"]
    assert body["event_time"] == "2025-06-06T00:00:00Z"


def test_lookup_rereads_latest_only_when_it_changed(lambda_env, context):
    handler.scheduled(load_event("scheduled.json"), context)
    handler.http(load_event("http_lookup.json"), context)
    handler.scheduled(dict(load_event("scheduled.json"), time="2025-06-06T01:00:00Z"), context)
    body = json.loads(handler.http(load_event("http_lookup.json"), context)["body"])
    assert body["event_time"] == "2025-06-06T01:00:00Z"


def test_batch_limit_comes_from_the_environment(lambda_env, context, monkeypatch):
    monkeypatch.setenv("APY_RUNWAY_MAX_BATCH_ROWS", "2")
    response = handler.http(load_event("http_rows.json"), context)  # 3 rows
    assert response["statusCode"] == 413
    assert "limit of 2 rows" in json.loads(response["body"])["message"]
