"""No file can make the Lambda lie: each class of bad model, features file,
request or webhook URL is refused, end to end (the real handler, real boto3
against moto's S3 on 127.0.0.1, the tiny model's real files).

A tampered model is uploaded as anyone who can write the bucket could: the
arrays and the spec edited and the sha256 chain rewritten (no signing key).
Every refusal reaches an HTTP caller as 503 model_unavailable with the request
id, the reason only in the logs; the hourly run writes nothing.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import re
import struct
import tracemalloc
import uuid
import zipfile

import boto3
import numpy as np
import pytest
from fixtures.tiny_model import feature_file, load_event, write_run

from apy_runway.foundation.console import UserError
from apy_runway.foundation.s3 import upload_run
from apy_runway.operations import promote, publish
from inference import contracts, features, handler, service
from inference.features import FeatureContractError
from inference.model import artefact, portable
from inference.settings import ConfigError, Settings

SIGNING_KEY = "refusals-signing-key-0123456789ab"


@pytest.fixture(autouse=True)
def inference_logs(caplog):
    caplog.set_level(logging.INFO, logger="apy_runway.inference")


def logged(caplog, event: str) -> list[dict]:
    lines = [json.loads(r.getMessage()) for r in caplog.records if r.name == handler.logger.name]
    return [line for line in lines if line["event"] == event]


def _get(s3_client, bucket: str, name: str) -> bytes:
    return s3_client.get_object(Bucket=bucket, Key=contracts.MODEL_PREFIX + name)["Body"].read()


def _put(s3_client, bucket: str, name: str, body: bytes) -> None:
    s3_client.put_object(Bucket=bucket, Key=contracts.MODEL_PREFIX + name, Body=body)


def tamper(s3_client, bucket: str, edit) -> None:
    """Edit the served model's spec and arrays with `edit(spec, arrays)`, then
    rewrite the sha256 chain: the arrays' sha256 and size in the spec, the
    spec's in metadata.json."""
    spec = json.loads(_get(s3_client, bucket, contracts.PORTABLE_SPEC_FILE))
    arrays = {
        key: np.array(value)
        for key, value in artefact.read_npz(
            _get(s3_client, bucket, contracts.PORTABLE_ARRAYS_FILE)
        ).items()
    }
    arrays_bytes = edit(spec, arrays) or artefact.npz_bytes(arrays)
    spec["arrays"].update(sha256=artefact.sha256_hex(arrays_bytes), size_bytes=len(arrays_bytes))
    spec_bytes = json.dumps(spec).encode()
    metadata = json.loads(_get(s3_client, bucket, contracts.MODEL_METADATA_FILE))
    metadata["portable"].update(
        spec_sha256=artefact.sha256_hex(spec_bytes), spec_size_bytes=len(spec_bytes)
    )
    _put(s3_client, bucket, contracts.PORTABLE_ARRAYS_FILE, arrays_bytes)
    _put(s3_client, bucket, contracts.PORTABLE_SPEC_FILE, spec_bytes)
    _put(s3_client, bucket, contracts.MODEL_METADATA_FILE, json.dumps(metadata).encode())


def assert_unavailable(context, caplog, reason: str) -> None:
    """503 model_unavailable with the request id, nothing scored, the reason
    only in the log line."""
    response = handler.http(load_event("http_rows.json"), context)
    body = json.loads(response["body"])
    assert response["statusCode"] == 503, body
    assert body == {
        "schema_version": contracts.HTTP_SCHEMA_VERSION,
        "error": "model_unavailable",
        "message": handler.MODEL_UNAVAILABLE_MESSAGE,
        "request_id": context.aws_request_id,
    }
    assert reason in logged(caplog, "model_unavailable")[-1]["message"]


def assert_nothing_published(s3_client, bucket: str) -> None:
    listed = s3_client.list_objects_v2(Bucket=bucket, Prefix=contracts.PREDICTIONS_PREFIX)
    assert listed.get("KeyCount", 0) == 0


def _forest_keys(spec: dict) -> dict:
    return {name: spec["estimator"][f"{name}_key"] for name in ("left", "right", "value")}


def _leaf_values(value: float):
    def edit(spec, arrays):
        key = _forest_keys(spec)["value"]
        arrays[key] = np.full_like(arrays[key], value)

    return edit


def _isotonic_outputs(spec, arrays):
    spec["calibration"] = {
        "kind": "isotonic",
        "input": "p_keep",
        "x_key": "iso_x",
        "y_key": "iso_y",
    }
    arrays["iso_x"], arrays["iso_y"] = np.array([0.0, 1.0]), np.array([0.0, 3.15])


def _cycle(spec, arrays):
    keys = _forest_keys(spec)
    left = arrays[keys["left"]]
    inner = int(np.flatnonzero(left >= 0)[1])
    left[inner] = 0  # back to the root: a walk that never ends


def _index_out_of_range(spec, arrays):
    right = arrays[_forest_keys(spec)["right"]]
    right[int(np.flatnonzero(right >= 0)[0])] = 10**6


def _shared_child(spec, arrays):
    keys = _forest_keys(spec)
    left, right = arrays[keys["left"]], arrays[keys["right"]]
    root = 0
    right[root] = left[root]  # both children the same node: paths double at each level


def _oversized_shape(spec, arrays):
    """threshold.npy's header says 200 million float64 (1.6 GB); 1 KB follows."""
    key = spec["estimator"]["threshold_key"]
    header = {"descr": "<f8", "fortran_order": False, "shape": (200_000_000,)}
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, header)
    del arrays[key]
    archive = io.BytesIO(artefact.npz_bytes(arrays))
    with zipfile.ZipFile(archive, "a") as bundle:
        bundle.writestr(f"{key}.npy", buffer.getvalue() + bytes(1024))
    return archive.getvalue()


@pytest.mark.parametrize(
    "edit, reason",
    [
        (_leaf_values(5.0), "class fractions must lie in [0, 1]"),
        (_leaf_values(-0.5), "class fractions must lie in [0, 1]"),
        (_isotonic_outputs, "isotonic outputs must be probabilities"),
        (_cycle, "child lies outside its tree or before it"),
        (_index_out_of_range, "child lies outside its tree or before it"),
        (_shared_child, "child of two nodes"),
        (_oversized_shape, "declares shape (200000000,)"),
    ],
    ids=["p_keep_5", "negative", "calibrated_3_15", "cycle", "index", "shared_child", "shape"],
)
def test_a_tampered_model_with_a_rewritten_sha256_chain_serves_nothing(
    lambda_env, s3_client, context, caplog, edit, reason
):
    tamper(s3_client, lambda_env, edit)
    assert_unavailable(context, caplog, reason)
    with pytest.raises(artefact.ModelIntegrityError, match=re.escape(reason)):
        handler.scheduled(load_event("scheduled.json"), context)
    assert_nothing_published(s3_client, lambda_env)


def test_a_declared_shape_is_checked_before_anything_is_allocated():
    """np.load would allocate the 1.6 GB the header declares before finding
    1 KB: read_npz refuses first (traced by tracemalloc, which numpy reports to)."""
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        header, {"descr": "<f8", "fortran_order": False, "shape": (200_000_000,)}
    )
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("numeric.npy", header.getvalue() + bytes(1024))
    tracemalloc.start()
    try:
        with pytest.raises(artefact.ArchiveError, match="declares shape"):
            artefact.read_npz(archive.getvalue())
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 10 * 2**20


def test_a_features_file_declaring_more_than_it_holds_is_refused_unallocated():
    """The issue's 1.56 MB features file: its numeric matrix's header declares
    far more rows than the body holds; the header's sha256 is rewritten too."""
    data = feature_file(20_000)
    header, offset = features.read_header(data)
    arrays = {k: np.array(v) for k, v in artefact.read_npz(data[offset:]).items()}
    huge = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        huge, {"descr": "<f8", "fortran_order": True, "shape": (20_000_000, 10)}
    )
    archive = io.BytesIO(artefact.npz_bytes({k: v for k, v in arrays.items() if k != "numeric"}))
    with zipfile.ZipFile(archive, "a") as bundle:
        bundle.writestr("numeric.npy", huge.getvalue() + arrays["numeric"].tobytes("F"))
    body = archive.getvalue()
    header.update(body_sha256=hashlib.sha256(body).hexdigest(), body_size_bytes=len(body))
    encoded = json.dumps(header).encode()
    tampered = contracts.FEATURES_MAGIC + struct.pack("<Q", len(encoded)) + encoded + body
    tracemalloc.start()
    try:
        with pytest.raises(FeatureContractError, match="declares shape"):
            features.decode(tampered)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert len(tampered) < 20 * 2**20 and peak < 3 * len(tampered)


# --------------------------------------------------------------------------- rollback


def _run(tmp_path, version: int, signing_key: str | None = None):
    run_dir = tmp_path / f"run-v{version}"
    write_run(run_dir, signing_key=signing_key, model_version=version)
    return run_dir


def _new_container() -> None:
    handler._models.clear()


def test_a_rollback_without_the_promote_mark_is_refused(
    lambda_env, s3_client, context, caplog, tmp_path, project_home
):
    """v1 served, then v2; v1 uploaded again (as an attacker replaying an older
    signed spec would) is refused by a fresh container and by the warm one;
    `promote --run` marks it deliberate, and then it is served, until a newer
    version has been served (the old mark cannot be replayed)."""
    first = handler.scheduled(load_event("scheduled.json"), context)
    assert first["latest_written"]
    upload_run(s3_client, lambda_env, contracts.MODEL_PREFIX, _run(tmp_path, 2))
    _new_container()
    handler.scheduled({"time": "2025-06-06T01:00:00Z"}, context)
    head = s3_client.head_object(Bucket=lambda_env, Key="predictions/latest.json")
    assert head["Metadata"][contracts.MODEL_VERSION_MAX_METADATA] == "2"

    old = _run(tmp_path, 1)
    with pytest.raises(UserError, match=r"below 2.*apy-runway promote --run"):
        publish.check_not_older(s3_client, lambda_env, old)
    upload_run(s3_client, lambda_env, contracts.MODEL_PREFIX, old)
    _new_container()
    assert_unavailable(context, caplog, "has model_version 1, below 2")
    with pytest.raises(service.ModelRollback):
        handler.scheduled({"time": "2025-06-06T02:00:00Z"}, context)
    head = s3_client.head_object(Bucket=lambda_env, Key="predictions/latest.json")
    assert head["Metadata"]["event-time"] == "2025-06-06T01:00:00Z"

    promote.promote(project_home, old, bucket=lambda_env, client=s3_client)
    _new_container()
    assert handler.http(load_event("http_rows.json"), context)["statusCode"] == 200
    rolled = handler.scheduled({"time": "2025-06-06T03:00:00Z"}, context)
    head = s3_client.head_object(Bucket=lambda_env, Key="predictions/latest.json")
    assert rolled["latest_written"] and head["Metadata"]["model-version"] == "1"
    assert head["Metadata"][contracts.MODEL_VERSION_MAX_METADATA] == "2"

    upload_run(s3_client, lambda_env, contracts.MODEL_PREFIX, _run(tmp_path, 3))
    _new_container()
    handler.scheduled({"time": "2025-06-06T04:00:00Z"}, context)
    mark = _get(s3_client, lambda_env, contracts.ROLLBACK_FILE)
    upload_run(s3_client, lambda_env, contracts.MODEL_PREFIX, old)  # the replay, mark and all
    _put(s3_client, lambda_env, contracts.ROLLBACK_FILE, mark)
    _new_container()
    assert_unavailable(context, caplog, "3 has been served since")


def test_a_warm_container_serving_an_older_model_reloads_the_newer_one(
    lambda_env, s3_client, context, tmp_path
):
    """A container that cached v1 while another served v2 reads the published
    model again instead of refusing every hour."""
    handler.scheduled(load_event("scheduled.json"), context)  # caches v1
    loads = handler.MODEL_LOADS
    newer = _run(tmp_path, 2)
    upload_run(s3_client, lambda_env, contracts.MODEL_PREFIX, newer)
    latest = s3_client.head_object(Bucket=lambda_env, Key="predictions/latest.json")
    s3_client.copy_object(
        Bucket=lambda_env,
        Key="predictions/latest.json",
        CopySource={"Bucket": lambda_env, "Key": "predictions/latest.json"},
        Metadata={**latest["Metadata"], contracts.MODEL_VERSION_MAX_METADATA: "2"},
        MetadataDirective="REPLACE",
    )
    summary = handler.scheduled({"time": "2025-06-06T01:00:00Z"}, context)
    assert summary["latest_written"] and loads + 1 == handler.MODEL_LOADS
    assert summary["model_id"] == "tiny-forest-run-v2"


def test_with_a_signing_key_the_rollback_mark_must_be_signed(
    lambda_env, s3_client, context, caplog, tmp_path, project_home, monkeypatch
):
    monkeypatch.setenv("APY_RUNWAY_SIGNING_KEY", SIGNING_KEY)
    for version in (2, 1):
        upload_run(
            s3_client, lambda_env, contracts.MODEL_PREFIX, _run(tmp_path, version, SIGNING_KEY)
        )
        if version == 2:
            handler.scheduled(load_event("scheduled.json"), context)
    old = tmp_path / "run-v1"
    monkeypatch.delenv("APY_RUNWAY_SIGNING_KEY")  # promote without the key: unsigned mark
    promote.promote(project_home, old, bucket=lambda_env, client=s3_client)
    monkeypatch.setenv("APY_RUNWAY_SIGNING_KEY", SIGNING_KEY)
    _new_container()
    assert_unavailable(context, caplog, "not signed with the configured key")
    promote.promote(project_home, old, bucket=lambda_env, client=s3_client)
    _new_container()
    assert handler.http(load_event("http_rows.json"), context)["statusCode"] == 200


# --------------------------------------------------------------------------- features


def _publish(s3_client, bucket: str, data: bytes) -> None:
    s3_client.put_object(Bucket=bucket, Key=contracts.FEATURES_KEY, Body=data)


def _with_pool_ids(data: bytes, pool_ids: list[str]) -> bytes:
    """The file with its pool_id array replaced (sha256 rewritten): what a
    writer other than publish could leave."""
    header, offset = features.read_header(data)
    arrays = {k: np.array(v) for k, v in artefact.read_npz(data[offset:]).items()}
    arrays["pool_id"] = np.array(pool_ids)
    body = artefact.npz_bytes(arrays)
    header.update(body_sha256=hashlib.sha256(body).hexdigest(), body_size_bytes=len(body))
    encoded = json.dumps(header).encode()
    return contracts.FEATURES_MAGIC + struct.pack("<Q", len(encoded)) + encoded + body


def test_a_duplicated_pool_id_is_refused_by_publish_and_by_the_scorer(
    lambda_env, s3_client, context
):
    def twice(columns, contract):
        columns["pool_id"][7] = columns["pool_id"][3]

    with pytest.raises(FeatureContractError, match="pool_id 'pool-00003' is listed more than"):
        feature_file(20, edit=twice)
    ids = [f"pool-{i:05d}" for i in range(20)]
    ids[7] = "pool-00003"
    _publish(s3_client, lambda_env, _with_pool_ids(feature_file(20), ids))
    with pytest.raises(FeatureContractError, match="pool 'pool-00003' more than once"):
        handler.scheduled(load_event("scheduled.json"), context)
    assert_nothing_published(s3_client, lambda_env)


def test_a_feature_day_after_the_hour_plus_one_day_is_refused_naming_it(
    lambda_env, s3_client, context, caplog
):
    def future(columns, contract):
        columns["snapshot_date"][4] = "2030-01-01"

    with pytest.raises(FeatureContractError, match=r"feature day 2030-01-01 \(pool 'pool-00004'"):
        feature_file(20, edit=future)
    # a writer that is not publish (its clock in 2030) can still leave one
    data = feature_file(20, edit=future, published_at="2030-01-01T00:00:00Z")
    _publish(s3_client, lambda_env, data)
    summary = handler.scheduled(load_event("scheduled.json"), context)  # 2025-06-06T00
    assert "feature day 2030-01-01 (pool 'pool-00004'" in summary["refused"]
    assert "after the scoring hour 2025-06-06T00:00Z plus one day" in summary["refused"]
    assert logged(caplog, "features_refused")
    assert_nothing_published(s3_client, lambda_env)
    # the next day is fine: a refresh just after midnight UTC publishes it
    assert (
        features.future_days(
            ["p"], ["2025-06-07"], handler.scoring_hour(load_event("scheduled.json"))
        )
        is None
    )


# --------------------------------------------------------------------------- requests, webhook


@pytest.mark.parametrize(
    "headers, status",
    [
        ({"content-type": "text/plain"}, 415),
        ({"Content-Type": "text/plain;charset=UTF-8"}, 415),
        ({"content-type": "application/x-www-form-urlencoded"}, 415),
        ({}, 415),
        ({"content-type": "application/json; charset=utf-8"}, 200),
        ({"Content-Type": "Application/JSON"}, 200),
    ],
)
def test_a_body_that_is_not_declared_json_gets_415(lambda_env, context, headers, status):
    event = {**load_event("http_rows.json"), "headers": headers}
    response = handler.http(event, context)
    body = json.loads(response["body"])
    assert response["statusCode"] == status, body
    if status == 415:
        assert body["error"] == "unsupported_media_type" and body["field"] == "Content-Type"
        assert "application/json" in body["message"]


@pytest.mark.parametrize(
    "url",
    [
        "https://discord.com/api/webhooks/1/abc\r\nX-Injected: 1",
        "https://hooks.slack.com/services/T/B/x\n",
        "https://example.com/hook\x00",
        "https://example.com/a b",
        "https://example.com/\x7f",
        "https://exämple.com/hook",
    ],
)
def test_a_webhook_url_with_control_characters_is_refused_at_start_up(url, moto_endpoint):
    with pytest.raises(ConfigError, match="printable ASCII"):
        Settings(bucket="b", webhook_url=url)
    ssm = boto3.client("ssm", endpoint_url=moto_endpoint, region_name="us-east-1")
    name = f"/apy-runway/test/hook-{uuid.uuid4().hex[:8]}"
    ssm.put_parameter(Name=name, Value=url, Type="SecureString")
    settings = Settings(bucket="b", endpoint_url=moto_endpoint, webhook_url_parameter=name)
    with pytest.raises(ConfigError, match="printable ASCII"):
        service.webhook_url(settings, ssm)


def test_the_portable_loader_alone_refuses_what_the_handler_refuses(tiny_run):
    """The same checks hold for any caller of portable.load (training's export
    check, apy-runway score)."""
    spec = json.loads((tiny_run / contracts.PORTABLE_SPEC_FILE).read_text())
    arrays = {
        k: np.array(v)
        for k, v in portable.read_arrays(
            (tiny_run / contracts.PORTABLE_ARRAYS_FILE).read_bytes()
        ).items()
    }
    _leaf_values(5.0)(spec, arrays)
    with pytest.raises(artefact.ModelIntegrityError, match=r"class fractions"):
        portable.load(spec, arrays)
