"""HTTP answers to hostile bodies and events, and to server-side faults, through
the real handler (real boto3 client, moto's S3 server, the tiny model).

Every bad body or event gets a 4xx JSON error naming what was wrong (the row and
field when there is one); every server-side fault gets 503 model_unavailable
with the request id, and what went wrong (keys, file names, sha256 values, what
to run) only in the logs. tests/test_http_fuzz.py throws generated bodies at the
same handler.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import logging
import re

import pytest
from fixtures.tiny_model import load_event

from inference import handler


@pytest.fixture(autouse=True)
def inference_logs(caplog):
    caplog.set_level(logging.INFO, logger="apy_runway.inference")


def logged(caplog, event: str) -> list[dict]:
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == handler.logger.name]
    return [line for line in lines if line["event"] == event]


def rows_event(edit=None, body: str | None = None) -> dict:
    """The 3-row request of tests/events/http_rows.json, its rows edited or its body replaced."""
    event = load_event("http_rows.json")
    if body is None:
        rows = json.loads(event["body"])
        if edit:
            edit(rows)
        body = json.dumps(rows)
    event["body"] = body
    return event


def _row_text_with(row: int, field: str, literal: str) -> str:
    """The rows' JSON with one value replaced by raw JSON text (json.dumps could not write it)."""
    rows = json.loads(load_event("http_rows.json")["body"])
    rows[row][field] = "@@VALUE@@"
    return json.dumps(rows).replace('"@@VALUE@@"', literal)


DEEP = 100_000
BAD_BODIES = {
    # integers beyond float64's range (float() raised OverflowError: 500)
    "integer_beyond_float64": (_row_text_with(1, "tvl_usd", "1" + "0" * 400), 1, "tvl_usd"),
    "negative_integer_beyond_float64": (_row_text_with(0, "apy", "-" + "9" * 311), 0, "apy"),
    # 4,300+ digits: Python's int-string limit (ValueError: invalid_json, no row)
    "integer_of_5000_digits": (
        _row_text_with(2, "apy_rolling_7d_mean", "7" * 5000),
        2,
        "apy_rolling_7d_mean",
    ),
    # float32's range: the model compares in float32
    "float32_overflow": (_row_text_with(0, "apy", "3.5e38"), 0, "apy"),
    "integer_beyond_float32": (_row_text_with(0, "apy", "4" + "0" * 38), 0, "apy"),
}


@pytest.mark.parametrize("name", sorted(BAD_BODIES))
def test_numbers_beyond_range_are_400_naming_row_and_field(lambda_env, context, name):
    body, row, field = BAD_BODIES[name]
    response = handler.http(rows_event(body=body), context)
    answer = json.loads(response["body"])
    assert response["statusCode"] == 400, answer
    assert answer["error"] == "value_out_of_range"
    assert (answer["row"], answer["field"]) == (row, field)
    assert f"row {row}, field {field!r}" in answer["message"]
    assert len(response["body"]) < 500  # the number is described, not echoed


@pytest.mark.parametrize(
    "body, row, field",
    [
        ("[" * DEEP + "]" * DEEP, 0, None),
        ('{"pools": ' + "[" * DEEP + "]" * DEEP + "}", None, "pools"),
        ('{"a": ' * DEEP + "1" + "}" * DEEP, None, "a"),
        (_row_text_with(2, "apy", "[" * DEEP + "]" * DEEP), 2, "apy"),
        (_row_text_with(1, "chain", '{"x": ' * DEEP + "null" + "}" * DEEP), 1, "chain"),
    ],
    ids=["arrays", "lookup", "objects", "in_a_numeric_field", "in_a_text_field"],
)
def test_nesting_too_deep_to_parse_is_400_naming_row_and_field(
    lambda_env, context, body, row, field
):
    response = handler.http(rows_event(body=body), context)
    answer = json.loads(response["body"])
    assert response["statusCode"] == 400, answer
    assert answer["error"] == "too_deeply_nested"
    assert answer.get("row") == row and answer.get("field") == field
    assert "nested deeper than" in answer["message"]


def test_nesting_the_parser_follows_is_a_wrong_type_naming_row_and_field(lambda_env, context):
    response = handler.http(rows_event(body=_row_text_with(1, "apy", "[" * 50 + "]" * 50)), context)
    answer = json.loads(response["body"])
    assert response["statusCode"] == 400
    assert (answer["error"], answer["row"], answer["field"]) == ("non_numeric_value", 1, "apy")
    assert "got array" in answer["message"]


@pytest.mark.parametrize("value", ["false", "true", 0, 1, None, [], {}])
def test_is_base64_encoded_must_be_a_boolean(lambda_env, context, value):
    event = rows_event()
    event["isBase64Encoded"] = value
    response = handler.http(event, context)
    answer = json.loads(response["body"])
    assert response["statusCode"] == 400, answer
    assert (answer["error"], answer["field"]) == ("invalid_event", "isBase64Encoded")


def test_a_base64_body_is_decoded_and_bad_base64_is_named(lambda_env, context):
    event = rows_event()
    event["body"] = base64.b64encode(event["body"].encode()).decode()
    event["isBase64Encoded"] = True
    assert handler.http(event, context)["statusCode"] == 200
    event["body"] = "not base64 at all!"
    answer = json.loads(handler.http(event, context)["body"])
    assert (answer["error"], answer["field"]) == ("invalid_body", "body")


@pytest.mark.parametrize(
    "event, field",
    [
        ([], None),
        ("POST /predictions", None),
        (42, None),
        (None, None),
        ({**load_event("http_rows.json"), "body": [{"apy": 1}]}, "body"),
        ({**load_event("http_rows.json"), "body": 7}, "body"),
        ({**load_event("http_rows.json"), "requestContext": ["http"]}, "requestContext"),
        (
            {**load_event("http_rows.json"), "requestContext": {"http": "POST"}},
            "requestContext.http",
        ),
    ],
    ids=["list", "string", "number", "null", "body_list", "body_number", "context", "http"],
)
def test_a_malformed_event_is_400_naming_the_field(lambda_env, context, event, field):
    response = handler.http(event, context)
    answer = json.loads(response["body"])
    assert response["statusCode"] == 400, answer
    assert answer["error"] == "invalid_event" and answer.get("field") == field


@pytest.mark.parametrize(
    "method, path, status",
    [(["POST"], "/predictions", 405), ("POST", ["/predictions"], 404), ({}, {}, 404)],
)
def test_a_method_or_path_of_the_wrong_type_is_404_or_405(
    lambda_env, context, method, path, status
):
    event = copy.deepcopy(load_event("http_rows.json"))
    event["requestContext"]["http"].update(method=method, path=path)
    event["rawPath"] = path
    response = handler.http(event, context)
    assert response["statusCode"] == status, response


# --------------------------------------------------------------------------- server faults

INTERNALS = re.compile(
    r"s3://|metadata\.json|model_spec|\.npz|[0-9a-f]{64}|apy-runway publish|Traceback"
)


def _assert_model_unavailable(response, context, caplog) -> dict:
    answer = json.loads(response["body"])
    assert response["statusCode"] == 503, answer
    assert set(answer) == {"schema_version", "error", "message", "request_id"}
    assert answer["error"] == "model_unavailable"
    assert answer["request_id"] == context.aws_request_id
    assert not INTERNALS.search(response["body"]), response["body"]
    [line] = logged(caplog, "model_unavailable")
    assert line["request_id"] == context.aws_request_id
    return line


def _model_file(s3_client, bucket, name):
    return s3_client.get_object(Bucket=bucket, Key=f"models/latest/{name}")["Body"].read()


def _replace_spec(s3_client, bucket, spec: dict) -> None:
    """A changed spec with metadata.json's sha256 and size updated to match (as anyone
    who can write the bucket can, without a signing key)."""
    spec_bytes = json.dumps(spec).encode()
    metadata = json.loads(_model_file(s3_client, bucket, "metadata.json"))
    metadata["portable"].update(
        spec_sha256=hashlib.sha256(spec_bytes).hexdigest(), spec_size_bytes=len(spec_bytes)
    )
    s3_client.put_object(Bucket=bucket, Key="models/latest/model_spec.json", Body=spec_bytes)
    s3_client.put_object(
        Bucket=bucket, Key="models/latest/metadata.json", Body=json.dumps(metadata).encode()
    )


def test_a_missing_metadata_json_is_503_with_the_details_only_in_the_logs(
    lambda_env, context, caplog, monkeypatch
):
    monkeypatch.setenv("APY_RUNWAY_MODEL_PREFIX", "models/never-published/")
    line = _assert_model_unavailable(handler.http(rows_event(), context), context, caplog)
    assert "models/never-published/metadata.json does not exist" in line["message"]
    assert "apy-runway publish" in line["message"]


def test_a_sha256_mismatch_is_503_without_the_hashes_in_the_answer(
    lambda_env, context, caplog, s3_client
):
    s3_client.put_object(
        Bucket=lambda_env, Key="models/latest/model_arrays.npz", Body=b"not the arrays"
    )
    line = _assert_model_unavailable(handler.http(rows_event(), context), context, caplog)
    assert "model_arrays.npz size mismatch" in line["message"]


def test_a_feature_renamed_in_the_spec_is_a_server_fault_not_the_callers(
    lambda_env, context, caplog, s3_client
):
    """The spec renamed consistently (features, numeric_features, its block), its
    sha256 updated in metadata.json: the model would ask callers for a feature the
    run's feature contract does not have."""
    text = _model_file(s3_client, lambda_env, "model_spec.json").decode()
    assert text.count('"tvl_usd"') >= 3
    _replace_spec(s3_client, lambda_env, json.loads(text.replace('"tvl_usd"', '"tvl_usd_v2"')))
    line = _assert_model_unavailable(handler.http(rows_event(), context), context, caplog)
    assert "features differ" in line["message"] and "tvl_usd_v2" in line["message"]
    assert not logged(caplog, "bad_request")


@pytest.mark.parametrize(
    "document",
    [
        b"[]",
        b"{}",
        b'{"predictions": [1]}',
        b"not json",
        b'{"predictions": [{"pool_id": "p", "p_keep": NaN}]}',  # could not be answered
        b'{"predictions": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",  # too deep to parse
    ],
    ids=["list", "empty", "not_records", "not_json", "nan", "deep"],
)
def test_a_latest_json_that_is_not_a_predictions_document_is_503(
    lambda_env, context, caplog, s3_client, document
):
    s3_client.put_object(Bucket=lambda_env, Key="predictions/latest.json", Body=document)
    line = _assert_model_unavailable(
        handler.http(load_event("http_lookup.json"), context), context, caplog
    )
    assert line["error_type"] == "PublishedPredictionsError"


def test_without_a_lambda_context_the_answer_still_carries_a_request_id(lambda_env, monkeypatch):
    monkeypatch.setenv("APY_RUNWAY_MODEL_PREFIX", "models/never-published/")
    answer = json.loads(handler.http(rows_event())["body"])
    assert answer["error"] == "model_unavailable" and len(answer["request_id"]) == 36


def test_a_fault_of_this_code_is_500_with_the_traceback_only_in_the_logs(
    lambda_env, context, caplog, monkeypatch
):
    def broken(event, request_id, started):
        raise KeyError("internal detail")

    monkeypatch.setitem(handler.ROUTES, ("POST", "/predictions"), broken)
    response = handler.http(rows_event(), context)
    answer = json.loads(response["body"])
    assert response["statusCode"] == 500 and answer["error"] == "internal_error"
    assert "internal detail" not in response["body"] and "Traceback" not in response["body"]
    [line] = logged(caplog, "internal_error")
    assert "internal detail" in line["traceback"]
