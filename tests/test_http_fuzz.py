"""Generated bodies and events thrown at the HTTP handler (hypothesis): deep
nesting, huge integers and floats, NaN/Infinity, wrong types, base64 (well and
badly encoded, and isBase64Encoded of every JSON kind), random text, events
that are not objects or have malformed fields, and headers of any kind (a
Content-Type other than application/json is 415).

The model and latest.json are served and the model is cached after the first
call, so every example runs the real handler (inference.handler.http) without
reloading the model: any 5xx is caused by the body. The handler must always
answer JSON; a non-200 is a 4xx error whose code and message name what was
wrong, never a traceback. Rows with one bad value must be refused naming that
row and field.
"""

from __future__ import annotations

import base64
import json
import uuid

import boto3
import pytest
from fixtures.tiny_model import (
    CATEGORICAL,
    FEATURES,
    NUMERIC,
    LambdaContext,
    feature_file,
    load_event,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apy_runway.foundation.s3 import upload_run
from apy_runway.operations.publish import upload_features_binary
from inference import contracts, handler

CONTEXT = LambdaContext()
TEMPLATE = load_event("http_rows.json")


@pytest.fixture(scope="module")
def served(moto_endpoint, tiny_run):
    """A bucket with the tiny model, 50 pools of features and one hourly run's
    latest.json (so lookups answer); the model loaded once into the handler's cache."""
    bucket = f"apy-runway-fuzz-{uuid.uuid4().hex[:8]}"
    client = boto3.client("s3", endpoint_url=moto_endpoint, region_name="us-east-1")
    client.create_bucket(Bucket=bucket)
    upload_run(client, bucket, contracts.MODEL_PREFIX, tiny_run)
    upload_features_binary(client, bucket, contracts.FEATURES_KEY, feature_file(50))
    with pytest.MonkeyPatch.context() as patch:
        for name in ("APY_RUNWAY_SIGNING_KEY", "APY_RUNWAY_SIGNING_KEY_PARAMETER"):
            patch.delenv(name, raising=False)
        patch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
        patch.setenv("APY_RUNWAY_BUCKET", bucket)
        handler.scheduled(load_event("scheduled.json"), CONTEXT)
        loads = handler.MODEL_LOADS
        assert handler.http(TEMPLATE, CONTEXT)["statusCode"] == 200
        assert handler.http(load_event("http_lookup.json"), CONTEXT)["statusCode"] == 200
        yield
        assert loads == handler.MODEL_LOADS  # the model was read once for all examples


# --------------------------------------------------------------------------- strategies

big_digits = st.integers(min_value=39, max_value=6000)
numbers_text = st.one_of(
    big_digits.map(lambda n: "9" * n),  # beyond float32 (39+ digits) up to past int's limit
    big_digits.map(lambda n: "-1" + "0" * n),
    st.sampled_from(["3.5e38", "-3.41e38", "1e39", "1e308", "1.8e308", "1e999", "-1e400"]),
    st.sampled_from(["NaN", "Infinity", "-Infinity"]),
)
depths = st.one_of(st.integers(min_value=1, max_value=200), st.sampled_from([2000, 100_000]))
nested_text = st.tuples(depths, st.sampled_from(["[]", "{}"])).map(
    lambda d: "[" * d[0] + "]" * d[0] if d[1] == "[]" else '{"k": ' * d[0] + "1" + "}" * d[0]
)
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=10**300, max_value=10**400),
    st.floats(),
    st.text(max_size=12),
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=16,
)
good_numeric = st.one_of(
    st.none(),
    st.floats(min_value=-1e30, max_value=1e30, allow_nan=False),
    st.integers(min_value=-(10**9), max_value=10**9),
)
good_text = st.one_of(st.none(), st.text(max_size=12))


@st.composite
def good_rows(draw) -> list[dict]:
    return [
        {
            **{f: draw(good_numeric) for f in NUMERIC},
            **{f: draw(good_text) for f in CATEGORICAL},
        }
        for _ in range(draw(st.integers(min_value=1, max_value=3)))
    ]


def _wrong_kind_text(field: str) -> st.SearchStrategy[str]:
    """JSON text of a value the field does not take."""
    wrong = st.one_of(
        st.booleans(), st.lists(json_scalars, max_size=3), st.dictionaries(st.text(), json_scalars)
    )
    wrong = wrong | (st.text(max_size=12) if field in NUMERIC else st.floats() | st.integers())
    return st.one_of(wrong.map(json.dumps), nested_text, numbers_text)


@st.composite
def one_bad_cell(draw) -> tuple[str, tuple[int, str]]:
    """(body, (row, field)): valid rows with one value replaced by raw JSON text
    the field cannot take."""
    rows = draw(good_rows())
    row = draw(st.integers(min_value=0, max_value=len(rows) - 1))
    field = draw(st.sampled_from(FEATURES))
    literal = draw(_wrong_kind_text(field))
    rows[row][field] = "@@BAD@@"
    return json.dumps(rows).replace('"@@BAD@@"', literal), (row, field)


any_body_text = st.one_of(
    json_values.map(json.dumps),
    st.dictionaries(st.just("pools"), json_values).map(json.dumps),
    st.lists(st.text(max_size=10), max_size=5).map(lambda ids: json.dumps({"pools": ids})),
    good_rows().map(json.dumps),
    nested_text,
    numbers_text,
    st.text(max_size=40),
)


def _event(body, encoded=False) -> dict:
    return {**TEMPLATE, "body": body, "isBase64Encoded": encoded}


def _b64(text: str) -> str:
    return base64.b64encode(text.encode("utf-8", "surrogatepass")).decode()


requests = st.one_of(
    # (event, (row, field) the answer must name, or None)
    one_bad_cell().map(lambda b: (_event(b[0]), b[1])),
    one_bad_cell().map(lambda b: (_event(_b64(b[0]), True), b[1])),
    any_body_text.map(lambda b: (_event(b), None)),
    any_body_text.map(lambda b: (_event(_b64(b), True), None)),
    any_body_text.map(lambda b: (_event(b, True), None)),  # not base64 at all, mostly
    st.binary(max_size=40).map(lambda b: (_event(base64.b64encode(b).decode(), True), None)),
    st.tuples(any_body_text, json_values).map(lambda t: (_event(t[0], t[1]), None)),
    json_values.map(lambda body: (_event(body), None)),  # a body that is not a string
    json_values.filter(lambda e: not isinstance(e, dict)).map(lambda e: (e, None)),
    st.dictionaries(
        st.sampled_from(
            ["requestContext", "rawPath", "body", "isBase64Encoded", "version", "headers"]
        ),
        json_values,
    ).map(lambda changes: ({**TEMPLATE, **changes}, None)),
    st.tuples(
        st.dictionaries(st.sampled_from(["content-type", "Content-Type", "x"]), json_values),
        good_rows().map(json.dumps),
    ).map(lambda t: ({**TEMPLATE, "headers": t[0], "body": t[1]}, None)),
)


def _assert_answer(response, expected) -> None:
    assert isinstance(response, dict) and isinstance(response.get("statusCode"), int), response
    assert response["headers"] == {"content-type": "application/json"}
    answer = json.loads(response["body"])
    status = response["statusCode"]
    assert answer["schema_version"] == contracts.HTTP_SCHEMA_VERSION
    assert status < 500, answer  # the model and latest.json are served: it was the body
    assert "Traceback" not in response["body"]
    if status == 200:
        assert expected is None, answer
        assert "predictions" in answer or "pools" in answer
        return
    assert status in (400, 404, 405, 413, 415), answer
    assert isinstance(answer["error"], str) and answer["error"], answer
    assert isinstance(answer["message"], str) and answer["message"], answer
    if answer.get("row") is not None:
        assert str(answer["row"]) in answer["message"], answer
    if answer.get("field") is not None:
        assert answer["field"] in answer["message"], answer
    if expected is not None:
        assert (answer.get("row"), answer.get("field")) == expected, answer


@settings(
    derandomize=True,
    deadline=None,
    max_examples=2000,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(request=requests)
def test_no_generated_body_or_event_gets_a_5xx_or_an_unnamed_error(served, request):
    event, expected = request
    _assert_answer(handler.http(event, CONTEXT), expected)
