"""The serving core's I/O: every function takes the Settings and an S3 client
as arguments (no environment, no globals), so the handler and `apy-runway
score` call the same code.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError

from inference import contracts
from inference.artefact import (
    ModelSpec,
    check_library_versions,
    installed_versions,
    load_verified_model,
    model_file_name,
)
from inference.health import shrink_refusal
from inference.publication import score_published
from inference.settings import Settings
from inference.validation import InputError

NOT_FOUND_CODES = ("404", "NoSuchKey", "NotFound")


class FeaturesRefused(RuntimeError):
    """The published features must not be scored (the shrink rule)."""


@dataclass(frozen=True)
class LoadedModel:
    model: Any
    spec: ModelSpec
    metadata: dict
    source: str
    size_bytes: int
    seconds: float
    version_warnings: tuple[str, ...]


def get_bytes(client: Any, bucket: str, key: str) -> bytes:
    return client.get_object(Bucket=bucket, Key=key)["Body"].read()


def put_json(client: Any, bucket: str, key: str, payload: dict, metadata: dict[str, str]) -> None:
    body = json.dumps(payload, separators=(",", ":"), allow_nan=False).encode()
    client.put_object(
        Bucket=bucket, Key=key, Body=body, ContentType="application/json", Metadata=metadata
    )


def load_model(settings: Settings, client: Any) -> LoadedModel:
    """Read metadata.json and the model from the model prefix, verify, load."""
    started = time.perf_counter()
    prefix = settings.model_prefix
    metadata = json.loads(
        get_bytes(client, settings.bucket, prefix + contracts.MODEL_METADATA_FILE)
    )
    spec = ModelSpec.from_metadata(metadata)
    warnings = check_library_versions(metadata, installed_versions())
    model_file = model_file_name(metadata)
    data = get_bytes(client, settings.bucket, prefix + model_file)
    model = load_verified_model(data, metadata)
    return LoadedModel(
        model=model,
        spec=spec,
        metadata=metadata,
        source=f"s3://{settings.bucket}/{prefix}{model_file}",
        size_bytes=len(data),
        seconds=time.perf_counter() - started,
        version_warnings=tuple(warnings),
    )


def read_latest_predictions(
    settings: Settings, client: Any, cached: tuple[str, dict] | None = None
) -> tuple[str, dict]:
    """(ETag, document) of predictions/latest.json; with `cached`, a conditional
    GET that returns the cached pair when the object has not changed."""
    key = settings.latest_predictions_key
    try:
        kwargs = {"IfNoneMatch": cached[0]} if cached else {}
        response = client.get_object(Bucket=settings.bucket, Key=key, **kwargs)
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code")
        if cached and code in ("304", "NotModified"):
            return cached
        if code in NOT_FOUND_CODES:
            raise InputError(
                "no predictions have been published yet; send feature rows instead",
                status=503,
                code="no_published_predictions",
            ) from error
        raise
    return response["ETag"], json.loads(response["Body"].read())


def _latest_metadata(settings: Settings, client: Any) -> dict | None:
    """The S3 metadata of latest.json (None: nothing published yet)."""
    try:
        head = client.head_object(Bucket=settings.bucket, Key=settings.latest_predictions_key)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in NOT_FOUND_CODES:
            return None
        raise
    return head.get("Metadata", {})


def _newer_than_latest(settings: Settings, client: Any, event_time: str) -> bool:
    """A retried *older* event must not roll latest.json back."""
    metadata = _latest_metadata(settings, client)
    return metadata is None or metadata.get("event-time", "") <= event_time


def _refuse_shrunk(settings: Settings, client: Any, payload: dict) -> None:
    """The shrink rule against the pool count last scored (latest.json)."""
    previous = (_latest_metadata(settings, client) or {}).get(contracts.PREDICTIONS_POOLS_METADATA)
    count = payload.get(contracts.FEATURES_ROW_COUNT_FIELD)
    if not isinstance(count, int):
        count = len((payload.get("columns") or {}).get("pool_id") or [])
    refusal = shrink_refusal(
        count,
        int(previous) if previous and previous.isdigit() else None,
        payload.get(contracts.FEATURES_ALLOW_SHRINK_FIELD) is True,
    )
    if refusal:
        raise FeaturesRefused(f"s3://{settings.bucket}/{settings.features_key}: {refusal}")


def score_hour(
    settings: Settings, client: Any, loaded: LoadedModel, event_time: datetime
) -> tuple[dict, dict]:
    """Score the published features for one hour; write the hour's key and,
    unless a newer hour is already there, latest.json. Returns (summary, the
    published document)."""
    payload = json.loads(get_bytes(client, settings.bucket, settings.features_key))
    _refuse_shrunk(settings, client, payload)
    result = score_published(
        loaded.model, loaded.spec, payload, event_time, settings.stale_after_hours
    )
    object_metadata = {
        "event-time": result["event_time"],
        "model-id": loaded.spec.model_id,
        contracts.PREDICTIONS_POOLS_METADATA: str(result["counts"]["pools"]),
    }
    hourly = contracts.hourly_predictions_key(settings.predictions_prefix, event_time)
    put_json(client, settings.bucket, hourly, result, object_metadata)
    latest = settings.latest_predictions_key
    wrote_latest = _newer_than_latest(settings, client, result["event_time"])
    if wrote_latest:
        put_json(client, settings.bucket, latest, result, object_metadata)
    summary = {
        "hourly_key": hourly,
        "latest_key": latest if wrote_latest else None,
        "model_id": loaded.spec.model_id,
        "event_time": result["event_time"],
        "feature_date_max": result["feature_date_max"],
        "health": result["health"]["status"],
        **result["counts"],
    }
    return summary, result
