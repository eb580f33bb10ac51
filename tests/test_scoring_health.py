"""Scoring follows the features: the S3 ObjectCreated event of the features key
(its eventTime floored to the hour) or the hourly schedule; the run's health
(features_stale, and the refresh's: refresh_missed, input_warnings, refused_input);
and the shrink rule, held by publish and by the Lambda, which scores a shrunken
features file only when its header allows it."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import pytest
from fixtures.tiny_model import feature_columns, feature_file, load_event

from apy_runway.foundation.console import UserError
from apy_runway.operations.publish import (
    LatestFeatures,
    publish,
    published_row_count,
    upload_features_binary,
)
from inference import contracts, features, handler, health
from inference.events import EventError, scoring_hour


def s3_event(bucket: str, key: str = contracts.FEATURES_KEY, time: str | None = None) -> dict:
    event = json.loads(json.dumps(load_event("s3_features_created.json")).replace("BUCKET", bucket))
    record = event["Records"][0]
    record["s3"]["object"]["key"] = key
    if time:
        record["eventTime"] = time
    return event


# --------------------------------------------------------------------------- the hour


@pytest.mark.parametrize(
    ("event", "hour"),
    [
        (s3_event("b"), "2025-06-06T03:00:00+00:00"),
        (s3_event("b", time="2025-06-06T03:59:59.999Z"), "2025-06-06T03:00:00+00:00"),
        (s3_event("b", time="2025-06-06T05:30:00+02:00"), "2025-06-06T03:00:00+00:00"),
        ({"time": "2025-06-06T00:00:00Z"}, "2025-06-06T00:00:00+00:00"),
        ({"time": "2025-06-06T07:00:12Z"}, "2025-06-06T07:00:00+00:00"),
    ],
)
def test_the_scoring_hour_is_the_events_time_floored(event, hour):
    assert scoring_hour(event).isoformat() == hour


@pytest.mark.parametrize(
    "event",
    [
        {},
        {"time": "yesterday"},
        {"Records": [{"eventSource": "aws:s3"}]},
        {"Records": ["not an object"]},
        {"Records": [{"eventTime": 1717632000}]},
        ["not", "a", "dict"],
    ],
)
def test_an_event_without_a_usable_time_is_refused(event):
    with pytest.raises(EventError):
        scoring_hour(event)


def test_the_s3_event_scores_the_hour_of_its_event_time(lambda_env, context, s3_client):
    summary = handler.scheduled(s3_event(lambda_env), context)
    assert summary["hourly_key"] == "predictions/hourly/2025-06-06T03Z.json"
    body = s3_client.get_object(Bucket=lambda_env, Key=summary["hourly_key"])["Body"].read()
    assert json.loads(body)["event_time"] == "2025-06-06T03:00:00Z"


def test_an_s3_event_for_another_key_is_ignored(lambda_env, context, s3_client):
    result = handler.scheduled(s3_event(lambda_env, key="features/other.json"), context)
    assert result == {"ignored": [(lambda_env, "features/other.json")]}
    assert s3_client.list_objects_v2(Bucket=lambda_env, Prefix="predictions/").get("KeyCount") == 0


# --------------------------------------------------------------------------- health


@pytest.mark.parametrize(
    ("feature_date", "event_time", "reasons"),
    [
        ("2025-06-05", "2025-06-06T00:00:00Z", []),
        ("2025-06-05", "2025-06-08T00:00:00Z", []),  # exactly 48 h after the day's end
        ("2025-06-05", "2025-06-08T01:00:00Z", ["features_stale"]),
        (None, "2025-06-06T00:00:00Z", ["features_stale"]),
    ],
)
def test_health_is_degraded_when_the_features_are_stale(feature_date, event_time, reasons):
    moment = datetime.fromisoformat(event_time.replace("Z", "+00:00"))
    result = health.health(feature_date, moment, contracts.FEATURES_STALE_AFTER_HOURS)
    assert result == {"status": "degraded" if reasons else "ok", "reasons": reasons}
    assert set(reasons) <= set(health.REASONS)


HOUR = datetime.fromisoformat("2025-06-06T13:00:00+00:00")
NOTE = "collect 2025-06-06T13Z: Date header not trusted, the clock's hour used"


@pytest.mark.parametrize(
    ("refresh", "reasons"),
    [
        # this hour's refresh published, with nothing to say
        (features.refresh_fields(HOUR.replace(minute=5)), []),
        # an earlier hour's: this hour's refresh did not publish
        (features.refresh_fields(HOUR - timedelta(hours=1)), [health.REFRESH_MISSED]),
        # this hour's, with a warning on its input
        (features.refresh_fields(HOUR, [NOTE]), [health.INPUT_WARNINGS]),
        # both: an earlier refresh that warned
        (
            features.refresh_fields(HOUR - timedelta(hours=3), [NOTE], ["pools/x.json.gz"]),
            [health.REFRESH_MISSED, health.INPUT_WARNINGS, health.REFUSED_INPUT],
        ),
        # no refreshed_hour (published by hand, or before the field): never refresh_missed
        ({}, []),
        (features.refresh_fields(input_notes=[NOTE]), [health.INPUT_WARNINGS]),
        ({contracts.FEATURES_REFRESHED_HOUR_FIELD: "not an hour"}, []),
    ],
)
def test_health_names_a_missed_refresh_and_warned_input(refresh, reasons):
    found = health.health("2025-06-05", HOUR.replace(minute=50), refresh=refresh)
    assert found["reasons"] == reasons
    assert found["status"] == ("degraded" if reasons else "ok")
    assert reasons == [r for r in health.REASONS if r in reasons]  # REASONS' order
    assert ("refreshed_hour" in found) == (health.REFRESH_MISSED in reasons)
    if health.REFRESH_MISSED in reasons:
        assert found["refreshed_hour"] == refresh[contracts.FEATURES_REFRESHED_HOUR_FIELD]
    assert found.get("input_notes", []) == refresh.get(contracts.FEATURES_INPUT_NOTES_FIELD, [])


def test_refresh_fields_are_the_refreshs_only():
    fields = features.refresh_fields(HOUR.replace(minute=59), ["a note"], ["pools/x.json.gz"])
    assert tuple(fields) == contracts.FEATURES_REFRESH_FIELDS
    assert fields[contracts.FEATURES_REFRESHED_HOUR_FIELD] == "2025-06-06T13:00:00Z"
    assert features.refresh_fields() == {}
    with pytest.raises(features.FeatureContractError, match="not refresh fields"):
        feature_file(5, refresh={"allow_shrink": True})


def test_the_lambda_reads_the_refresh_fields_of_the_features_header(lambda_env, context, s3_client):
    """Scored at the safety net's minute 50 of the next hour, features a refresh
    published with a note say both reasons, in the document and latest.json."""
    published = datetime.fromisoformat("2025-06-06T00:05:00+00:00")
    upload_features_binary(
        s3_client,
        lambda_env,
        contracts.FEATURES_KEY,
        feature_file(50, refresh=features.refresh_fields(published, [NOTE])),
    )
    same_hour = handler.scheduled(dict(load_event("scheduled.json"), time="2025-06-06T00:50:00Z"))
    assert same_hour["health"] == "degraded" and same_hour["health_reasons"] == [
        health.INPUT_WARNINGS
    ]
    next_hour = handler.scheduled(dict(load_event("scheduled.json"), time="2025-06-06T01:50:00Z"))
    latest = json.loads(
        s3_client.get_object(Bucket=lambda_env, Key="predictions/latest.json")["Body"].read()
    )
    assert next_hour["health_reasons"] == latest["health"]["reasons"]
    assert latest["health"] == {
        "status": "degraded",
        "reasons": [health.REFRESH_MISSED, health.INPUT_WARNINGS],
        "refreshed_hour": "2025-06-06T00:00:00Z",
        "input_notes": [NOTE],
    }


def test_the_hourly_output_and_latest_carry_the_health(lambda_env, context, s3_client):
    fresh = handler.scheduled(load_event("scheduled.json"), context)
    stale = handler.scheduled(
        dict(load_event("scheduled.json"), time="2025-06-12T00:00:00Z"), context
    )
    for summary, status in ((fresh, "ok"), (stale, "degraded")):
        document = json.loads(
            s3_client.get_object(Bucket=lambda_env, Key=summary["hourly_key"])["Body"].read()
        )
        assert document["health"]["status"] == status and summary["health"] == status
    latest = json.loads(
        s3_client.get_object(Bucket=lambda_env, Key="predictions/latest.json")["Body"].read()
    )
    assert latest["health"] == {"status": "degraded", "reasons": ["features_stale"]}
    assert latest["schema_version"] == contracts.PREDICTIONS_SCHEMA_VERSION
    assert all("apy" in p for p in latest["predictions"])


# --------------------------------------------------------------------------- the shrink rule


@pytest.mark.parametrize(
    ("count", "previous", "allow", "refused"),
    [
        (50, 100, False, False),
        (49, 100, False, True),
        (49, 100, True, False),
        (1, None, False, False),
    ],
)
def test_the_shrink_rule(count, previous, allow, refused):
    assert (health.shrink_refusal(count, previous, allow) is not None) == refused


def test_the_lambda_refuses_a_shrunken_features_file_unless_its_header_allows_it(
    lambda_env, context, s3_client
):
    handler.scheduled(load_event("scheduled.json"), context)  # 50 pools scored
    upload_features_binary(s3_client, lambda_env, contracts.FEATURES_KEY, feature_file(20))
    later = dict(load_event("scheduled.json"), time="2025-06-06T01:00:00Z")
    result = handler.scheduled(later, context)
    assert "20 pools, below 50% of the 50 scored last" in result["refused"]
    keys = [o["Key"] for o in s3_client.list_objects_v2(Bucket=lambda_env)["Contents"]]
    assert "predictions/hourly/2025-06-06T01Z.json" not in keys
    allowed = feature_file(20, allow_shrink=True)
    upload_features_binary(s3_client, lambda_env, contracts.FEATURES_KEY, allowed)
    assert handler.scheduled(later, context)["pools"] == 20


def test_publish_refuses_a_shrunken_features_file_and_writes_the_features_key_last(
    s3_client, tiny_run
):
    def latest(n: int, allow_shrink: bool = False) -> LatestFeatures:
        payload = feature_columns(n)
        payload[contracts.FEATURES_ALLOW_SHRINK_FIELD] = allow_shrink
        return LatestFeatures(payload, feature_file(n, allow_shrink=allow_shrink))

    bucket = "publish-shrink"
    s3_client.create_bucket(Bucket=bucket)
    publish(s3_client, bucket, latest(40))
    assert published_row_count(s3_client, bucket, contracts.FEATURES_KEY) == 40
    with pytest.raises(UserError, match="10 pools, below 50% of the 40 published"):
        publish(s3_client, bucket, latest(10), run_dir=tiny_run)
    # refused before anything was written, the run included
    keys = [o["Key"] for o in s3_client.list_objects_v2(Bucket=bucket)["Contents"]]
    assert sorted(keys) == sorted([contracts.FEATURES_KEY, contracts.FEATURES_JSON_KEY])
    allowed = latest(10, allow_shrink=True)
    written: list[str] = []

    def record(params, **_):
        written.append(params["Key"])

    s3_client.meta.events.register("provide-client-params.s3.PutObject", record)
    publish(s3_client, bucket, allowed, run_dir=tiny_run)
    header, _ = features.read_header(
        s3_client.get_object(Bucket=bucket, Key=contracts.FEATURES_KEY)["Body"].read()
    )
    assert header["allow_shrink"] is True and header["row_count"] == 10
    # the key whose ObjectCreated event starts the scorer comes last, after the
    # model and the JSON copy
    assert written[-2:] == [contracts.FEATURES_JSON_KEY, contracts.FEATURES_KEY]
    assert len(written) > 3 and all(k.startswith(contracts.MODEL_PREFIX) for k in written[:-2])
