"""The Lambda handler end to end: real boto3 clients against moto's S3 server
(and its SSM for the signing key), events from tests/events/*.json, the real
core and a tiny real model served from its portable files."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import uuid
import zipfile

import boto3
import joblib
import numpy as np
import pytest
from fixtures.tiny_model import FEATURES, feature_file, load_event, write_run

from apy_runway.foundation.s3 import upload_run
from apy_runway.operations.publish import upload_features_binary
from inference import contracts, handler, settings

MODEL_FILES = [
    "models/latest/metadata.json",
    "models/latest/model_spec.json",
    "models/latest/model_arrays.npz",
]
SIGNING_KEY = "test-signing-key-0123456789abcdef"


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


def unavailable_reason(caplog) -> str:
    """The logged reason of the last model_unavailable answer (callers see only
    the error code and the request id)."""
    return [line for line in json_lines(caplog) if line["event"] == "model_unavailable"][-1][
        "message"
    ]


@pytest.fixture(autouse=True)
def inference_logs(caplog):
    caplog.set_level(logging.INFO, logger="apy_runway.inference")


def test_cold_load_then_cached_for_the_container(lambda_env, context, tiny_run):
    gets, stop = s3_calls("GetObject")
    loads_before = handler.MODEL_LOADS
    try:
        first = handler.http(load_event("http_rows.json"), context)
        assert gets == MODEL_FILES  # model.joblib is never read
        second = handler.http(load_event("http_rows.json"), context)
    finally:
        stop()
    assert gets == MODEL_FILES
    assert loads_before + 1 == handler.MODEL_LOADS
    assert first["statusCode"] == second["statusCode"] == 200
    assert first["body"] == second["body"]


def test_http_rows_are_scored_as_the_scikit_learn_pipeline_scores_them(
    lambda_env, context, tiny_run
):
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
    np.testing.assert_allclose(body["predictions"], model.predict_proba(X), rtol=0, atol=1e-9)
    assert [set(r) for r in body["rows"]] == [
        {"predicted_class", "predicted_probability", "binned_confidence", "confidence_words"}
    ] * 3
    assert body["model_id"] and set(body["label"]) == {
        "horizon_days",
        "apy_drop_threshold",
        "apy_future_stat",
    }
    assert body["model_id"] == f"tiny-forest-{tiny_run.name}"
    assert body["schema_version"] == contracts.HTTP_SCHEMA_VERSION


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


def test_an_s3_failure_reaches_the_caller_as_503_without_its_details(
    lambda_env, context, caplog, monkeypatch
):
    monkeypatch.setenv("APY_RUNWAY_BUCKET", "no-such-bucket-apy-runway")
    response = handler.http(load_event("http_rows.json"), context)
    assert response["statusCode"] == 503
    assert json.loads(response["body"])["error"] == "model_unavailable"
    assert "Traceback" not in response["body"] and "NoSuchBucket" not in response["body"]
    [line] = [r for r in caplog.records if r.name == "apy_runway.inference"]
    assert "\n" not in line.getMessage()
    logged = json.loads(line.getMessage())
    assert logged["event"] == "model_unavailable" and logged["s3_error_code"] == "NoSuchBucket"


def _pickle_bomb(marker) -> bytes:
    class Payload:  # unpickling this would create the marker file
        def __reduce__(self):
            return (open, (str(marker), "w"))

    buffer = io.BytesIO()
    joblib.dump(Payload(), buffer)
    return buffer.getvalue()


def _npy_of_object_array(marker) -> bytes:
    class Payload:  # the same, inside an object array of an .npy
        def __reduce__(self):
            return (open, (str(marker), "w"))

    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.array([Payload()], dtype=object), allow_pickle=True)
    return buffer.getvalue()


def _read(s3_client, bucket, name: str) -> bytes:
    return s3_client.get_object(Bucket=bucket, Key=f"models/latest/{name}")["Body"].read()


def _put(s3_client, bucket, name: str, body: bytes) -> None:
    s3_client.put_object(Bucket=bucket, Key=f"models/latest/{name}", Body=body)


def _replace_spec(s3_client, bucket, spec: dict, **portable) -> None:
    """Upload a changed spec and point metadata.json at it (sha256 and size
    updated, as anyone who can write the bucket can)."""
    spec_bytes = json.dumps(spec, indent=1).encode()
    metadata = json.loads(_read(s3_client, bucket, "metadata.json"))
    metadata["portable"].update(
        spec_sha256=hashlib.sha256(spec_bytes).hexdigest(),
        spec_size_bytes=len(spec_bytes),
        **portable,
    )
    _put(s3_client, bucket, "model_spec.json", spec_bytes)
    _put(s3_client, bucket, "metadata.json", json.dumps(metadata).encode())


def test_a_replaced_model_joblib_with_a_matching_sha256_is_never_unpickled(
    lambda_env, context, s3_client, tmp_path
):
    """The attack that used to run code in the Lambda: a pickle uploaded with a
    metadata.json naming its sha256. Nothing is unpickled any more: the Lambda
    reads the portable spec and arrays, never model.joblib."""
    marker = tmp_path / "unpickled"
    bomb = _pickle_bomb(marker)
    metadata = json.loads(_read(s3_client, lambda_env, "metadata.json"))
    metadata.update(model_sha256=hashlib.sha256(bomb).hexdigest(), model_size_bytes=len(bomb))
    _put(s3_client, lambda_env, "model.joblib", bomb)
    _put(s3_client, lambda_env, "metadata.json", json.dumps(metadata).encode())
    gets, stop = s3_calls("GetObject")
    try:
        response = handler.http(load_event("http_rows.json"), context)
        summary = handler.scheduled(load_event("scheduled.json"), context)
    finally:
        stop()
    assert response["statusCode"] == 200 and summary["scored"] > 0
    assert "models/latest/model.joblib" not in gets
    assert not marker.exists()


def test_a_pickle_inside_the_arrays_file_is_refused_unread(
    lambda_env, context, s3_client, tmp_path, caplog
):
    """Arrays and spec replaced consistently (sha256 and sizes updated, no
    signing key): an object array in the .npz is a pickle, and
    np.load(allow_pickle=False) refuses it before anything runs."""
    marker = tmp_path / "unpickled"
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("forest/value.npy", _npy_of_object_array(marker))
    arrays = buffer.getvalue()
    spec = json.loads(_read(s3_client, lambda_env, "model_spec.json"))
    spec["arrays"].update(sha256=hashlib.sha256(arrays).hexdigest(), size_bytes=len(arrays))
    _put(s3_client, lambda_env, "model_arrays.npz", arrays)
    _replace_spec(s3_client, lambda_env, spec)
    loads_before = handler.MODEL_LOADS
    response = handler.http(load_event("http_rows.json"), context)
    body = json.loads(response["body"])
    assert response["statusCode"] == 503 and body["error"] == "model_unavailable"
    assert "allow_pickle" in unavailable_reason(caplog)
    assert not marker.exists() and loads_before == handler.MODEL_LOADS


@pytest.fixture
def signed_env(lambda_env, s3_client, tmp_path):
    """The bucket's model replaced by a run signed with SIGNING_KEY."""
    run_dir = tmp_path / "signed-run"
    write_run(run_dir, signing_key=SIGNING_KEY)
    upload_run(s3_client, lambda_env, "models/latest/", run_dir)
    return lambda_env


def test_with_a_signing_key_a_signed_spec_is_served(signed_env, context, monkeypatch, caplog):
    monkeypatch.setenv("APY_RUNWAY_SIGNING_KEY", SIGNING_KEY)
    assert handler.http(load_event("http_rows.json"), context)["statusCode"] == 200
    [loaded] = [line for line in json_lines(caplog) if line["event"] == "model_loaded"]
    assert loaded["signature_checked"] is True


@pytest.mark.parametrize("tamper", ["cutpoints", "arrays_sha256", "unsigned", "no_key_needed"])
def test_with_a_signing_key_a_tampered_or_unsigned_spec_is_refused(
    signed_env, context, s3_client, monkeypatch, tamper, caplog
):
    spec = json.loads(_read(s3_client, signed_env, "model_spec.json"))
    if tamper == "arrays_sha256":
        spec["arrays"]["sha256"] = "0" * 64
    else:
        spec["confidence_cutpoints"] = [50.0, 50.0]
    _replace_spec(
        s3_client, signed_env, spec, **({"spec_hmac_sha256": None} if tamper == "unsigned" else {})
    )
    if tamper == "no_key_needed":  # without a key the same edit is served: what signing is for
        assert handler.http(load_event("http_rows.json"), context)["statusCode"] == 200
        return
    monkeypatch.setenv("APY_RUNWAY_SIGNING_KEY", SIGNING_KEY)
    gets, stop = s3_calls("GetObject")
    try:
        response = handler.http(load_event("http_rows.json"), context)
    finally:
        stop()
    body = json.loads(response["body"])
    assert response["statusCode"] == 503 and body["error"] == "model_unavailable"
    expected = "unsigned" if tamper == "unsigned" else "HMAC-SHA256 mismatch"
    assert expected in unavailable_reason(caplog)
    assert gets == MODEL_FILES[:2]  # refused before the spec is parsed or the arrays read
    with pytest.raises(Exception, match=expected):
        handler.scheduled(load_event("scheduled.json"), context)
    assert list_keys(s3_client, signed_env) == []


def test_the_signing_key_can_come_from_an_ssm_parameter(
    signed_env, context, moto_endpoint, monkeypatch, caplog
):
    ssm = boto3.client("ssm", endpoint_url=moto_endpoint, region_name="us-east-1")
    name = f"/apy-runway/test/{uuid.uuid4().hex[:8]}/signing-key"
    monkeypatch.setenv("APY_RUNWAY_SIGNING_KEY_PARAMETER", name)
    missing = handler.http(load_event("http_rows.json"), context)
    assert missing["statusCode"] == 503 and name in unavailable_reason(caplog)
    ssm.put_parameter(Name=name, Value="another-key-of-enough-length-000", Type="SecureString")
    wrong = handler.http(load_event("http_rows.json"), context)
    assert wrong["statusCode"] == 503 and "HMAC-SHA256 mismatch" in unavailable_reason(caplog)
    ssm.put_parameter(Name=name, Value=SIGNING_KEY, Type="SecureString", Overwrite=True)
    assert handler.http(load_event("http_rows.json"), context)["statusCode"] == 200


@pytest.mark.parametrize(
    "edit, part",
    [
        (lambda spec: spec["preprocess"]["blocks"][0].update(kind="target_encoder"), "kind"),
        (lambda spec: spec["features"].append("extra_feature"), "features"),
        (lambda spec: spec["estimator"].update(n_trees=99), "n_trees"),
        (lambda spec: spec["preprocess"]["blocks"][0]["steps"].append({"kind": "log"}), "'log'"),
        (lambda spec: spec["preprocess"].update(width=3), "width"),
    ],
)
def test_a_spec_that_disagrees_with_its_arrays_is_one_model_unavailable(
    lambda_env, context, s3_client, caplog, edit, part
):
    spec = json.loads(_read(s3_client, lambda_env, "model_spec.json"))
    edit(spec)
    _replace_spec(s3_client, lambda_env, spec)
    response = handler.http(load_event("http_rows.json"), context)
    body = json.loads(response["body"])
    assert response["statusCode"] == 503 and body["error"] == "model_unavailable"
    assert part in unavailable_reason(caplog) and part not in body["message"]
    assert [line["event"] for line in json_lines(caplog)] == ["model_unavailable"]
    with pytest.raises(Exception, match=part):
        handler.scheduled(load_event("scheduled.json"), context)
    assert list_keys(s3_client, lambda_env) == []  # nothing scored


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
    assert body_first == body_second
    # the same summary, but for the health the retry found in latest.json: the
    # first run's (a retry in the same state announces nothing), and the timings
    timings = ("alert", "ms", "side_ms")
    assert {k: v for k, v in first.items() if k not in timings} == {
        k: v for k, v in second.items() if k not in timings
    }
    assert first["ms"].keys() == second["ms"].keys() >= {"features_get", "scoring", "put_latest"}
    assert "hourly_copied" in first["ms"]  # latest.json's bytes went up once
    assert first["alert"] == {"change": None, "previous": None, "posted": False}
    assert second["alert"] == {"change": None, "previous": first["health"], "posted": False}
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
    assert summary["latest_key"] is None and summary["latest_written"] is False
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
    def drop_chain(columns, contract):
        del columns["chain"]
        contract["features"] = [f for f in contract["features"] if f != "chain"]
        contract["categorical"] = [f for f in contract["categorical"] if f != "chain"]

    upload_features_binary(
        s3_client, lambda_env, contracts.FEATURES_KEY, feature_file(10, edit=drop_chain)
    )
    with pytest.raises(Exception, match="chain"):
        handler.scheduled(load_event("scheduled.json"), context)
    assert list_keys(s3_client, lambda_env) == []
    assert json_lines(caplog)[-1]["event"] == "scheduled_failed"


def test_a_value_beyond_float32_is_not_scored_and_every_other_pool_is(
    lambda_env, context, s3_client
):
    """One tvl_usd = 1e39 used to stop the whole hourly run."""

    def extremes(columns, contract):
        columns["observed_day_count"][2:5] = [100, 100, 100]
        columns["apy"][2:5] = [5.0, 5.0, 5.0]
        columns["tvl_usd"][2] = 1e39
        columns["apy_rolling_7d_mean"][3] = float("-inf")
        columns["tvl_usd"][4] = 3e38  # within float32's range: scored

    upload_features_binary(
        s3_client, lambda_env, contracts.FEATURES_KEY, feature_file(50, edit=extremes)
    )
    summary = handler.scheduled(load_event("scheduled.json"), context)
    published = json.loads(
        s3_client.get_object(Bucket=lambda_env, Key=summary["hourly_key"])["Body"].read()
    )
    by_pool = {p["pool_id"]: p for p in published["predictions"]}
    assert by_pool["pool-00002"]["status"] == "not scored"
    assert by_pool["pool-00002"]["reason"] == "tvl_usd = 1e+39 is beyond float32's range"
    assert by_pool["pool-00003"]["reason"] == "apy_rolling_7d_mean = -inf is not finite"
    assert by_pool["pool-00004"]["status"] == "scored"
    others = [
        p for p in published["predictions"] if p["pool_id"] not in ("pool-00002", "pool-00003")
    ]
    assert all(p["reason"] is None or "float32" not in p["reason"] for p in others)
    assert summary["scored"] == sum(p["status"] == "scored" for p in others) > 40


def test_hourly_predictions_carry_their_reasons(lambda_env, context, s3_client):
    summary = handler.scheduled(load_event("scheduled.json"), context)
    published = json.loads(
        s3_client.get_object(Bucket=lambda_env, Key=summary["hourly_key"])["Body"].read()
    )
    assert published["schema_version"] == contracts.PREDICTIONS_SCHEMA_VERSION
    assert published["explanation"]["units"] == "p_keep"
    assert published["explanation"]["calibration"] is None
    scored = [p for p in published["predictions"] if p["status"] == "scored"]
    assert scored and all(
        p["reasons"] is None for p in published["predictions"] if p["status"] != "scored"
    )
    for record in scored:
        assert 1 <= len(record["reasons"]) <= contracts.REASONS_PER_PREDICTION
        sizes = [abs(r["contribution"]) for r in record["reasons"]]
        assert sizes == sorted(sizes, reverse=True)
        assert all(r["feature"] in FEATURES and r["text"] for r in record["reasons"])


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
    assert all(p["reasons"] for p in body["pools"] if p["status"] == "scored")
    assert body["explanation"]["method"].startswith("tree path contributions")


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
